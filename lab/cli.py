"""``xcp-provision lab``: boot real VMs from this server and check the chain from PXE to pool."""

from __future__ import annotations

import signal
import sys
from dataclasses import replace
from pathlib import Path
from types import FrameType

import click

from lab.examples import run_examples
from lab.harness import LabOptions, default_results, run_lab
from lab.ipv6 import Addressing, run_ipv6
from lab.rack import RackOptions, mixed_firmwares, run_rack
from lab.raid import run_raid


@click.group()
def lab() -> None:
    """The real-boot lab: QEMU VMs PXE-boot, install, boot Xen and join a pool."""


def _interrupt(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def _firmware(*, uefi: bool, uefi_http: bool) -> str:
    if uefi and uefi_http:
        raise click.UsageError("--uefi and --uefi-http exclude each other: pick one firmware path")
    return "uefi-http" if uefi_http else "uefi" if uefi else "bios"


@lab.command("run")
@click.option("--vms", type=click.IntRange(1, 16), default=1, show_default=True)
@click.option("--uefi", is_flag=True, help="UEFI firmware (OVMF, its own PXE client) for all VMs.")
@click.option(
    "--uefi-http",
    is_flag=True,
    help="UEFI HTTP Boot (OVMF with its PXE off) for all VMs; the server runs without TFTP.",
)
@click.option(
    "--results",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder for serial logs, server log and report (default ./results/lab-<timestamp>).",
)
@click.option(
    "--timeout",
    type=click.FloatRange(30),
    default=1800,
    show_default=True,
    help="Seconds from power-on until every check must hold.",
)
@click.option(
    "--release",
    "release_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Release directory (default: $XCP_PROVISION_CACHE/lab/releases/lab).",
)
@click.option("--no-build", is_flag=True, help="Use --release as it is; run no image builder.")
@click.option(
    "--disk-bus", type=click.Choice(["virtio", "sata"]), default="virtio", show_default=True
)
@click.option(
    "--bmc",
    is_flag=True,
    help="Give every VM a BMC (ipmi_sim) and power it only through the server's API; without "
    "--uefi/--uefi-http, half the VMs are BIOS and half UEFI.",
)
@click.option(
    "--reinstall",
    is_flag=True,
    help="With --bmc: once all are in the pool, one rolling reinstall of the pool through the "
    "API; every VM must install again and rejoin.",
)
@click.option(
    "--max-parallel", type=click.IntRange(1), default=2, show_default=True,
    help="With --reinstall: VMs reinstalled at once.",
)  # fmt: skip
@click.option(
    "--raid",
    is_flag=True,
    help="Two disks per VM, installed as a software RAID1; once all are in the pool, each VM "
    "loses its second disk and must boot Xen and dom0 and report its mirror degraded.",
)
@click.option(
    "--xcpng-examples",
    is_flag=True,
    help="XCP-ng 8.3's documentation answer files, unchanged: a UEFI VM with three SATA disks "
    "installs the fresh-install example, a BIOS VM with two the RAID1 example, from the site's "
    "pxehost.example.com (the lab plays it); judged from serial consoles and the site's logs. "
    "Sets the VMs, firmwares and disk bus itself.",
)
@click.option(
    "--ipv6",
    type=click.Choice([mode.value for mode in Addressing]),
    is_flag=False,
    flag_value=Addressing.STATIC.value,
    default=None,
    help="One VM network-boots and installs over IPv4, its dom0 is managed over IPv6 alone; "
    "the server's name has A and AAAA records in the site's BIND, which must then hold the "
    "host's AAAA and ip6.arpa PTR. static (the default): the profile's address "
    "(fresh-static-ipv6); autoconf: SLAAC from the site's router advertisements "
    "(fresh-autoconf-ipv6), expected at the prefix and the VM MAC's EUI-64; dhcp: DHCPv6 "
    "from the site's DHCP server (fresh-dhcp-ipv6), expected among its leases.",
)
def run(
    *,
    vms: int,
    uefi: bool,
    uefi_http: bool,
    results: Path | None,
    timeout: float,
    release_dir: Path | None,
    no_build: bool,
    disk_bus: str,
    bmc: bool = False,
    reinstall: bool = False,
    max_parallel: int = 2,
    raid: bool = False,
    xcpng_examples: bool = False,
    ipv6: str | None = None,
) -> None:
    """Run the lab; exit 0 only when every VM is in the pool with Xen and dom0 up."""
    options = LabOptions(
        results=results or default_results(),
        firmwares=(_firmware(uefi=uefi, uefi_http=uefi_http),) * vms,
        timeout=timeout,
        release_dir=release_dir,
        build=not no_build,
        disk_bus=disk_bus,
    )

    def echo(line: str) -> None:
        click.echo(f"lab: {line}", err=True)

    if reinstall and not bmc:
        raise click.UsageError("--reinstall needs --bmc: the roll powers the VMs through them")
    if raid and bmc:
        raise click.UsageError("--raid and --bmc exclude each other: run the RAID lab alone")
    if xcpng_examples and (raid or bmc):
        raise click.UsageError("--xcpng-examples runs alone: drop --raid and --bmc")
    if ipv6 and (raid or bmc or xcpng_examples or vms != 1):
        raise click.UsageError("--ipv6 runs one VM alone: drop --vms, --raid, --bmc and the rest")
    if bmc and not (uefi or uefi_http):
        options = replace(options, firmwares=mixed_firmwares(vms))
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        if bmc:
            report = run_rack(RackOptions(options, reinstall, max_parallel), progress=echo)
        elif xcpng_examples:
            report = run_examples(options, progress=echo)
        elif ipv6:
            report = run_ipv6(options, progress=echo, addressing=Addressing(ipv6))
        elif raid:
            report = run_raid(options, progress=echo)
        else:
            report = run_lab(options, progress=echo)
    except KeyboardInterrupt:
        click.echo("lab: interrupted; everything was torn down", err=True)
        sys.exit(130)
    finally:
        signal.signal(signal.SIGTERM, previous)
    click.echo(report.summary())
    sys.exit(0 if report.ok else 1)
