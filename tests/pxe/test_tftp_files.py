"""Renderings of a BootPlan for pxelinux, GRUB and iPXE; GRUB's own parser checks ours."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from pxe.boot.plan import BootAction, BootPlan
from pxe.boot.render import UnrenderablePlanError
from pxe.boot.render.grub import grub_path, render_grub
from pxe.boot.render.ipxe import render_ipxe_script
from pxe.boot.render.pxelinux import render_pxelinux
from pxe.tftp.files import GeneratedFiles

INSTALL = BootPlan(
    BootAction.INSTALL,
    kernel_url="http://10.0.0.1:8080/r/vmlinuz",
    initrd_urls=("http://10.0.0.1:8080/r/install.img", "http://10.0.0.1:8080/r/extra.img"),
    cmdline="console=ttyS0,115200 answerfile=http://10.0.0.1:8080/a?mac=52-54-00-aa-bb-cc "
            "label='my host' $weird;",
    reason="profile lab",
)
LOCAL = BootPlan(BootAction.LOCAL, reason="installed")
WAIT = BootPlan(BootAction.WAIT, retry_seconds=45, reason="unknown host")


def grub_script_check(text: str, tmp_path: Path) -> None:
    cfg = tmp_path / "grub.cfg"
    cfg.write_text(text)
    proc = subprocess.run(["grub-script-check", str(cfg)], capture_output=True, text=True,
                          check=False)
    assert proc.returncode == 0, proc.stderr + text


def test_pxelinux_install_boots_kernel_and_initrds_over_http():
    text = render_pxelinux(INSTALL)
    assert "DEFAULT install" in text
    assert "  KERNEL http://10.0.0.1:8080/r/vmlinuz\n" in text
    assert "  INITRD http://10.0.0.1:8080/r/install.img,http://10.0.0.1:8080/r/extra.img\n" in text
    assert f"  APPEND {INSTALL.cmdline}\n" in text
    assert text.startswith("# xcp-provision: profile lab\n")


def test_pxelinux_local_and_wait():
    assert "LOCALBOOT 0" in render_pxelinux(LOCAL)
    wait = render_pxelinux(WAIT)
    assert "TIMEOUT 450" in wait
    assert "COM32 reboot.c32" in wait
    assert "SAY unknown host" in wait


@pytest.mark.parametrize("plan", [INSTALL, LOCAL, WAIT])
def test_grub_configs_parse_with_grub(plan, tmp_path):
    grub_script_check(render_grub(plan, "grub/grub.cfg-52-54-00-aa-bb-cc"), tmp_path)


def test_grub_install_uses_http_device_paths_and_quotes_arguments():
    text = render_grub(INSTALL, "grub/grub.cfg-52-54-00-aa-bb-cc")
    assert "linux (http,10.0.0.1:8080)/r/vmlinuz console=ttyS0,115200 " in text
    assert "answerfile=http://10.0.0.1:8080/a?mac=52-54-00-aa-bb-cc" in text
    assert "'$weird;'" in text
    assert "initrd (http,10.0.0.1:8080)/r/install.img (http,10.0.0.1:8080)/r/extra.img" in text


def test_grub_wait_rereads_its_own_file():
    text = render_grub(WAIT, "grub/grub.cfg-01-52-54-00-aa-bb-cc")
    assert "sleep 45" in text
    assert "configfile (tftp)/grub/grub.cfg-01-52-54-00-aa-bb-cc" in text


def test_grub_path():
    assert grub_path("http://h:81/a/b?x=1") == "(http,h:81)/a/b?x=1"
    with pytest.raises(UnrenderablePlanError, match="plain http"):
        grub_path("https://h/a")


def test_newlines_cannot_inject_config_lines():
    evil = BootPlan(BootAction.INSTALL, kernel_url="http://h/k", cmdline="a\nLABEL x")
    with pytest.raises(UnrenderablePlanError, match="several lines"):
        render_pxelinux(evil)
    with pytest.raises(UnrenderablePlanError, match="several lines"):
        render_grub(evil, "grub/grub.cfg-01-00-00-00-00-00-00")


def test_install_without_kernel_is_refused():
    with pytest.raises(UnrenderablePlanError, match="kernel URL"):
        render_pxelinux(BootPlan(BootAction.INSTALL))


def test_ipxe_script_chains_to_http_with_identity():
    text = render_ipxe_script("http://10.0.0.1:8080/")
    assert text.startswith("#!ipxe\n")
    assert ("chain --replace --autofree http://10.0.0.1:8080/boot/ipxe?mac=${net0/mac}"
            "&uuid=${uuid}&serial=${serial:uristring}&arch=${buildarch} || goto retry") in text


def test_generated_files_route_by_name_and_normalise_the_mac():
    asked: list[str] = []

    def plan_for_mac(mac: str, client_ip: str) -> BootPlan:
        assert client_ip == "10.0.0.9"  # discovery's limits count per address
        asked.append(mac)
        return LOCAL

    files = GeneratedFiles(plan_for_mac, "http://s:1")
    assert b"LOCALBOOT 0" in files("pxelinux.cfg/01-52-54-00-AA-BB-CC", "10.0.0.9")
    assert b"exit" in files("grub/grub.cfg-52-54-00-aa-bb-cc", "10.0.0.9")
    assert b"exit" in files("boot/grub/grub.cfg-01-52-54-00-aa-bb-cc", "10.0.0.9")
    assert files("boot.ipxe", "10.0.0.9").startswith(b"#!ipxe")
    assert asked == ["52:54:00:aa:bb:cc"] * 3
    for other in ("pxelinux.cfg/default", "pxelinux.cfg/C0A80001", "grub/grub.cfg",
                  "undionly.kpxe", "pxelinux.cfg/01-52-54-00-aa-bb"):
        assert files(other, "10.0.0.9") is None
    assert len(asked) == 3
