"""The fresh-install backend (also reinstall): one sequence, whichever front-end asked for it.

Order is the safety contract. Everything that can refuse runs first and writes nothing: the plan
(with every guard rail), the release manifest, the management NIC. Then the disk is partitioned,
the product laid down and configured, and only when every artefact has matched its checksum is
the bootloader written, so a corrupt image leaves a disk that does not boot a half root. The
install log lands on the logs partition (``/var/log/installer/``) whatever happens after mount,
and is uploaded to the provisioning server when the install fails.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from answerfiles.model import AnswerFile, BootloaderLocation, Proto, ScriptStage
from common.errors import ReportedError
from common.release import Artefact, Manifest
from hypervisor import grub
from installer import (
    bootloader,
    cmdline,
    discovery,
    hostconfig,
    laydown,
    local_bmc,
    mdadm_conf,
    partition,
    scripts,
)
from installer.block import mdadm
from installer.bootmode import booted_mode, refuse_secure_boot
from installer.discovery import Hardware, Nic, describe_disk, discover
from installer.errors import RefusedError
from installer.hostsize import HostSize
from installer.mounts import BULK_WRITE, mounted_tree
from installer.plan import BootMode, Plan, make_plan
from installer.progress import BuildDone, Progress, Reporter, Step
from installer.release import load_release, open_source
from installer.runlog import LogCapture, save_log
from installer.target import image_only, is_image_file, target_device, with_target_disk

log = logging.getLogger(__name__)

PRODUCT_VERSION = "0.1.0"
STEPS = (
    Step("prepare", 1),
    Step("partition", 3),
    Step("mount", 1),
    Step("laydown", 100),
    Step("configure", 1),
    Step("bootloader", 2),
    Step("scripts", 1),
    Step("finish", 1),
)


@dataclass(frozen=True)
class Prepared:
    """Everything decided before the first write."""

    answers: AnswerFile
    plan: Plan
    source: str
    manifest: Manifest
    host: HostSize
    nic_name: str
    nic_mac: str | None
    console: grub.HostConsole = grub.HostConsole.BOTH


@dataclass(frozen=True)
class Installed:
    plan: Plan
    identity: hostconfig.Identity
    labels: hostconfig.Labels
    devices: dict[str, str]
    scripts: tuple[scripts.ScriptRun, ...]
    # The sha256 of the registration key left for the first-boot agent, for build-done.
    registration_key_sha256: str | None = None


def management_nic(answers: AnswerFile, nics: tuple[Nic, ...]) -> tuple[str, str | None]:
    """The management NIC's name and MAC; a MAC the host does not have is a refusal.

    With both ``name`` and ``hwaddr`` they must name the same NIC: XCP-ng would quietly take the
    name, but a file that disagrees with the host about its NIC may be about another host, and
    the wrong NIC leaves the host unreachable after its first boot.
    """
    admin = answers.admin_interface
    if admin is None:
        return "eth0", None
    if admin.hwaddr:
        wanted = admin.hwaddr.lower()
        nic = next((n for n in nics if (n.mac or "").lower() == wanted), None)
        if nic is None:
            raise RefusedError(
                f"no network interface has MAC {admin.hwaddr} (admin-interface hwaddr); "
                f"this host has: {_describe_nics(nics)}"
            )
        if admin.name and admin.name != nic.name:
            raise RefusedError(
                f'admin-interface name="{admin.name}" and hwaddr="{admin.hwaddr}" name '
                f"different interfaces ({admin.hwaddr} is {nic.name}); this host has: "
                f"{_describe_nics(nics)}; correct one of them or give only one"
            )
        return nic.name, nic.mac
    name = admin.name or "eth0"
    mac = next((n.mac for n in nics if n.name == name), None)
    return name, mac


def _describe_nics(nics: tuple[Nic, ...]) -> str:
    return ", ".join(f"{n.name} {n.mac}" for n in nics) or "none"


def local_storage(
    plan: Plan, devices: dict[str, str], raid: mdadm.Array | None = None
) -> hostconfig.LocalStorage | None:
    """The SR the first boot is to create, its devices named stably as XCP-ng names them."""
    if plan.sr_type is None:
        return None
    names: list[str | None] = []
    if plan.primary.by_role("sr") is not None:
        names.append(_stable_partition_name(plan, "sr", devices.get("sr"), raid))
    names += [g.disk.by_id[0] if g.disk.by_id else g.disk.path for g in plan.guest_disks]
    return hostconfig.LocalStorage(plan.sr_type, tuple(n for n in names if n))


def prepare(
    answers: AnswerFile,
    device: str | None,
    boot_mode: BootMode,
    *,
    installer_disk: str | Sequence[str] | None = None,
    media: ExitStack,
) -> Prepared:
    """Plan and check everything; raises a ``RefusedError`` having written nothing.

    A release medium (``<source type="local"/>``) stays mounted until ``media`` closes, and its
    disk joins the installer's own, which the plan never writes.
    """
    answers = with_target_disk(answers, device)
    hardware = discover()
    if device is not None and all(d.path != device for d in hardware.disks):
        hardware = Hardware((*hardware.disks, describe_disk(device)), hardware.nics)
    source = open_source(answers, media)
    own = (installer_disk,) if isinstance(installer_disk, str) else tuple(installer_disk or ())
    plan = make_plan(answers, hardware, boot_mode, installer_disk=(*own, *source.disks))
    base, manifest = load_release(answers, source)
    nic_name, nic_mac = management_nic(answers, hardware.nics)
    return Prepared(answers, plan, base, manifest, HostSize.of_this_host(), nic_name, nic_mac)


def labels_of(plan: Plan) -> hostconfig.Labels:
    def label(role: str) -> str | None:
        spec = plan.primary.by_role(role)
        return spec.label if spec else None

    return hostconfig.Labels(
        root=plan.label("root"),
        logs=label("logs"),
        swap=label("swap"),
        esp=label("boot") if plan.boot_mode is BootMode.UEFI else None,
    )


_LAYOUT_NAMES = {"logs": "LOG"}


def partition_layout(plan: Plan) -> tuple[str, ...]:
    return tuple(
        _LAYOUT_NAMES.get(p.role, p.role.upper())
        for p in sorted(plan.primary.partitions, key=lambda p: p.number)
    )


def _stable_disk_name(plan: Plan, raid: mdadm.Array | None = None) -> str:
    if raid is not None:
        return mdadm.by_id_link(raid)
    disk = plan.primary.disk
    return disk.by_id[0] if disk.by_id else disk.path


def _stable_partition_name(
    plan: Plan, role: str, device: str | None, raid: mdadm.Array | None = None
) -> str | None:
    """``/dev/disk/by-id/...-partN`` as XCP-ng's inventory writes it, else the node."""
    spec = plan.primary.by_role(role)
    if spec is None or device is None:
        return device
    if raid is not None:
        return f"{mdadm.by_id_link(raid)}-part{spec.number}"
    disk = plan.primary.disk
    return f"{disk.by_id[0]}-part{spec.number}" if disk.by_id else device


def install(
    answers: AnswerFile,
    *,
    target: str | None = None,
    boot_mode: BootMode | None = None,
    reporters: tuple[Reporter, ...] = (),
    installer_disk: str | Sequence[str] | None = None,
    host_console: grub.HostConsole | None = None,
) -> Installed:
    """A fresh install or reinstall from ``answers``; raises a ``ReportedError`` on failure.

    ``host_console`` (default: the boot command line's ``host_console=``) is where the installed
    host's default entry sends Xen's and dom0's console.
    ``installer_disk`` (default: the disk this code runs from) can never be the target.
    """
    progress = Progress(STEPS, reporters)
    mode = boot_mode or booted_mode()
    answers = image_only(answers, target)
    with LogCapture() as capture, target_device(target) as device, ExitStack() as media:
        progress.start("prepare", "checking the answer file, the disk and the release")
        try:
            if not is_image_file(target):  # an image file boots on some other firmware
                refuse_secure_boot()
            own = installer_disk or discovery.installer_disks()
            prepared = prepare(answers, device, mode, installer_disk=own, media=media)
            prepared = dataclasses.replace(prepared, console=cmdline.host_console(host_console))
        except ReportedError as exc:
            progress.failed(str(exc), capture.text())
            raise
        log.info("plan: %s", _describe_plan(prepared.plan))
        seen = local_bmc.probe()
        if seen is not None:
            progress.bmc_seen(seen)
        if answers.bootloader.location == BootloaderLocation.PARTITION:
            log.warning(
                "bootloader location=partition: on a GPT disk GRUB still goes to the disk's "
                "boot code (BIOS) or the ESP (UEFI)"
            )
        ran: list[scripts.ScriptRun] = []
        complete = ScriptStage.INSTALLATION_COMPLETE
        try:
            ran += scripts.run_stage(answers.scripts, ScriptStage.INSTALLATION_START)
            result = _write_target(prepared, progress, capture, ran)
        except Exception as exc:
            log.error("installation failed: %s", exc)
            log.debug("where it failed", exc_info=True)
            ran += scripts.run_stage(answers.scripts, complete, "1")
            progress.failed(str(exc), capture.text())
            raise
        progress.start("finish", "running installation-complete scripts")
        ran += scripts.run_stage(answers.scripts, complete, "0")
        progress.done(BuildDone(result.registration_key_sha256))
        return dataclasses.replace(result, scripts=tuple(ran))


def _describe_plan(plan: Plan) -> str:
    parts = ", ".join(
        f"{p.number}:{p.role}@{p.start}+{p.sectors}" for p in plan.primary.on_disk_order
    )
    raid = plan.raid
    members = f" = RAID1 of {', '.join(m.disk.path for m in raid.members)}" if raid else ""
    return f"{plan.primary.disk.path}{members} ({plan.boot_mode.value}) {parts}"


def _write_target(
    prepared: Prepared,
    progress: Progress,
    capture: LogCapture,
    ran: list[scripts.ScriptRun],
) -> Installed:
    plan = prepared.plan
    what = plan.primary.disk.path
    if plan.raid is not None:
        what += f" (RAID1 of {', '.join(m.disk.path for m in plan.raid.members)})"
    progress.start("partition", f"partitioning {what}")
    applied = partition.apply_plan(
        plan, progress=lambda msg: progress.update("partition", 0.5, msg)
    )
    devices = dict(applied.devices)
    labels = labels_of(plan)
    identity = hostconfig.Identity.new()
    with mounted_tree() as mounts:
        progress.start("mount", "mounting the new filesystems")
        root = mounts.mount(devices["root"], options=BULK_WRITE)
        if "logs" in devices:
            mounts.mount(devices["logs"], "var/log", options=BULK_WRITE)
        try:
            key_sha256 = _populate(
                prepared,
                progress,
                root=root,
                devices=devices,
                labels=labels,
                identity=identity,
                ran=ran,
                raid=applied.raid,
            )
        finally:
            save_log(root, capture.text())
    return Installed(plan, identity, labels, devices, (), key_sha256)


def _populate(
    prepared: Prepared,
    progress: Progress,
    *,
    root: Path,
    devices: dict[str, str],
    labels: hostconfig.Labels,
    identity: hostconfig.Identity,
    ran: list[scripts.ScriptRun],
    raid: mdadm.Array | None = None,
) -> str:
    """Lay the release down and configure the host; returns the sha256 of the registration key
    written for its first-boot agent."""
    plan, answers = prepared.plan, prepared.answers
    total = sum(a.size for a in prepared.manifest.artefacts) or 1
    received_by_path: dict[str, int] = {}

    def on_bytes(art: Artefact, received: int) -> None:
        received_by_path[art.path] = received
        progress.update("laydown", sum(received_by_path.values()) / total, f"writing {art.path}")

    progress.start("laydown", "downloading and writing dom0 and Xen")
    laid = laydown.lay_down(prepared.source, prepared.manifest, root, on_bytes)

    progress.start("configure", "writing the host configuration")
    boot = grub.XenBoot.for_host(
        prepared.host.memory_kib,
        prepared.host.cpus,
        labels.root,
        laid.default,
        laid.fallback,
        version=f"Xen {laid.xen_version}" if laid.xen_version else "",
        console=prepared.console,
    )
    admin = answers.admin_interface
    facts = hostconfig.HostFacts(
        primary_disk=_stable_disk_name(plan, raid),
        backup_partition=_stable_partition_name(plan, "backup", devices.get("backup"), raid),
        partition_layout=partition_layout(plan),
        dom0_mem_mib=boot.dom0_mem_mib,
        dom0_vcpus=boot.dom0_max_vcpus,
        xen_version=laid.xen_version,
        kernel_version=laid.kernel_version,
        product_version=PRODUCT_VERSION,
        management_interface=prepared.nic_name,
        management_mac=prepared.nic_mac,
        uefi=plan.boot_mode is BootMode.UEFI,
        management_address_type=(
            "IPv6" if admin is not None and admin.proto == Proto.NONE else "IPv4"
        ),
        local_storage=local_storage(plan, devices, raid),
    )
    key_sha256 = hostconfig.configure(root, answers, labels, facts, identity)
    if raid is not None:
        mdadm_conf.write_mdadm_conf(root, raid)

    progress.start("bootloader", "writing GRUB")
    boot_spec = plan.partition("boot")
    bootloader.install(
        bootloader.Firmware(
            disk=plan.primary.disk.path,
            boot_partition=devices["boot"],
            boot_partition_number=boot_spec.number,
            uefi=plan.boot_mode is BootMode.UEFI,
            raid_members=raid.members if raid is not None else (),
        ),
        root,
        boot,
        write_boot_entry=answers.bootloader.write_boot_entry,
    )
    progress.start("scripts", "running filesystem-populated scripts")
    ran += scripts.run_stage(answers.scripts, ScriptStage.FILESYSTEM_POPULATED, str(root))
    return key_sha256
