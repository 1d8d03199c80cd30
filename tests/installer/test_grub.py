"""The Xen boot entry builder: XCP-ng's sizing and a grub.cfg GRUB itself accepts."""

from __future__ import annotations

import re

import pytest

from common import runner
from hypervisor import grub

GIB_KIB = 1024 * 1024


@pytest.mark.parametrize(
    ("host_gib", "mib"),
    [(4, 1232), (16, 1856), (64, 4304), (128, 7584), (256, 8192), (1024, 8192)],
)
def test_dom0_memory_is_one_gib_plus_five_percent_capped(host_gib: int, mib: int) -> None:
    assert grub.dom0_memory_mib(host_gib * GIB_KIB) == mib
    assert mib % 16 == 0


@pytest.mark.parametrize(
    ("cpus", "vcpus"), [(1, 1), (2, 2), (3, 3), (4, 4), (23, 4), (24, 6), (31, 6), (32, 8), (96, 8)]
)
def test_dom0_vcpus_step_with_host_cpus(cpus: int, vcpus: int) -> None:
    assert grub.dom0_vcpus(cpus) == vcpus


def _boot() -> grub.XenBoot:
    return grub.XenBoot.for_host(
        64 * GIB_KIB,
        16,
        "root-abcdef",
        grub.BootFiles("/boot/xen.gz", "/boot/vmlinuz", "/boot/initrd.img"),
        grub.BootFiles("/boot/xen-4.17.gz", "/boot/vmlinuz-6.1", "/boot/initrd.img-6.1"),
        version="4.17",
    )


def test_grub_cfg_has_four_multiboot2_entries_in_order() -> None:
    cfg = grub.render_grub_cfg(_boot())
    titles = re.findall(r"^menuentry '([^']*)'", cfg, re.M)
    assert titles == [
        "XCP-provision",
        "XCP-provision (Serial)",
        "XCP-provision in Safe Mode",
        "XCP-provision fallback (4.17)",
    ]
    assert cfg.count("multiboot2 /boot/xen.gz ") == 3
    assert "multiboot2 /boot/xen-4.17.gz " in cfg
    assert cfg.count("search --no-floppy --label --set root root-abcdef") == 4
    assert cfg.count("root=LABEL=root-abcdef ro") == 4
    assert "set default=0" in cfg


def test_serial_and_safe_entries_put_xen_on_com1() -> None:
    serial, safe = grub.menu_entries(_boot())[1:3]
    for entry in (serial, safe):
        assert "com1=115200,8n1" in entry.xen_args
        assert "console=com1,vga" in entry.xen_args
        assert "dom0_mem=4304M,max:4304M" in entry.xen_args
        assert "dom0_max_vcpus=1-4" in entry.xen_args
    assert "nosmp" in safe.xen_args and "nosmp" not in serial.xen_args


def test_the_default_entry_writes_to_serial_and_screen_unless_told_otherwise() -> None:
    both = grub.menu_entries(_boot())[0]
    assert {"com1=115200,8n1", "console=com1,vga", "vga=mode-0x0311"} <= set(both.xen_args)
    consoles = [a for a in both.kernel_args if a.startswith("console=")]
    assert consoles == ["console=tty0", "console=hvc0"]  # the last is dom0's /dev/console
    vga_boot = grub.XenBoot(**{**_boot().__dict__, "console": grub.HostConsole.VGA})
    vga = grub.menu_entries(vga_boot)[0]
    assert "console=vga" in vga.xen_args and not any("com1" in a for a in vga.xen_args)
    assert "quiet" in vga.kernel_args


def test_grub_accepts_the_rendered_config(tmp_path) -> None:
    cfg = tmp_path / "grub.cfg"
    cfg.write_text(grub.render_grub_cfg(_boot()))
    runner.run(["grub-script-check", str(cfg)])


def test_a_quote_in_the_title_cannot_break_the_config(tmp_path) -> None:
    boot = grub.XenBoot(**{**_boot().__dict__, "title": "Rack 'A' host"})
    cfg = tmp_path / "grub.cfg"
    cfg.write_text(grub.render_grub_cfg(boot))
    runner.run(["grub-script-check", str(cfg)])
    assert "Rack 'A' host" not in cfg.read_text().split("menuentry", 1)[0]


def test_a_serial_console_setting_boots_the_serial_entry() -> None:
    boot = grub.XenBoot(**{**_boot().__dict__, "console": grub.HostConsole.SERIAL})
    assert "set default=1\n" in grub.render_grub_cfg(boot)
    assert "set default=0\n" in grub.render_grub_cfg(_boot())
