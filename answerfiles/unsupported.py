"""What an XCP-ng 8.3 answer file may ask for that this installer cannot do, refused up front.

The promise to XCP-ng users is that everything their installer reads is either honoured here or
refused when the file is validated, with the reason; never accepted, then skipped or failed
halfway through an install. Each such refusal lives here, so whoever implements one of these
features removes its refusal in one place (and the row of docs/answerfile.md that names it).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from answerfiles.errors import Problem
from answerfiles.locations import Locations
from answerfiles.model import AnswerFile, BootloaderLocation, Mode, SourceType
from common.release import LOCAL_MEDIA_LABEL

# Elements refused wherever they stand, with the sentence the operator reads.
ELEMENTS: dict[str, str] = {
    "fcoe-interface": (
        "<fcoe-interface> is not supported: this installer cannot start Fibre Channel over "
        "Ethernet, so no disk behind it would be found; install onto a local disk and remove it"
    ),
}

# What installer.scripts can fetch a stage script from (installer.sources.read_location).
SCRIPT_SCHEMES = ("http", "https", "file")

REINSTALL = (
    'mode="reinstall" is not supported yet: XCP-ng keeps a backup of the installation it '
    'replaces, which this installer cannot make; write mode="fresh" to install without a '
    'backup, or mode="upgrade" to keep the installation'
)
DRIVER_SOURCE = (
    "<driver-source> is not supported: driver packs are XCP-ng RPM packages, which neither "
    "this installer nor its Debian dom0 can load; remove it"
)
CONFIRMATION = (
    "<ui-confirmation-prompt> is not supported: an unattended install here never stops to ask, "
    "so it would not wait for your confirmation; remove it, or install interactively with "
    "`xcp-install --tui`"
)
BOOTLOADER_PARTITION = (
    'location="partition" is not supported: GRUB always goes to the disk\'s boot code (BIOS) '
    'or to the EFI system partition (UEFI); remove it or write location="mbr"'
)
SR_NOT_AT_END = (
    'sr-at-end="false" is not supported: the local SR always takes the end of the primary '
    "disk, as in XCP-ng 8.3's default layout; remove the attribute"
)
NFS_SCRIPT = (
    'type="nfs" scripts are not supported: the installer fetches scripts over '
    f"{'|'.join(SCRIPT_SCHEMES)} only; publish the script on a web server"
)

_FRESH_MODES = (Mode.FRESH, Mode.REINSTALL)


def unsupported_problems(answers: AnswerFile, where: Locations) -> list[Problem]:
    """One error per feature of ``answers`` that this installer would otherwise not carry out."""
    problems: list[Problem] = _sources(answers, where)
    if answers.mode is Mode.REINSTALL:
        problems.append(where.problem("", REINSTALL))
    for i, _source in enumerate(answers.driver_sources):
        problems.append(where.problem(f"driver-source#{i}", DRIVER_SOURCE))
    if answers.ui_confirmation_prompt:
        problems.append(where.problem("ui-confirmation-prompt", CONFIRMATION))
    problems += _scripts(answers, where)
    partition = answers.bootloader.location is BootloaderLocation.PARTITION
    if partition and answers.mode is not Mode.RESTORE:
        problems.append(where.problem("bootloader", BOOTLOADER_PARTITION))
    if answers.mode in _FRESH_MODES:
        problems += _disks(answers, where)
    return problems


def disk_problem(disk: str) -> str | None:
    """Why ``disk`` cannot be installed onto or looked at, when it names a kind we lack."""
    if disk.lower().startswith("iscsi:"):
        return (
            f"disk {disk!r} is an iSCSI target (RFC 4173): iSCSI disks are not supported yet; "
            "name a local disk"
        )
    return None


def _disks(answers: AnswerFile, where: Locations) -> list[Problem]:
    problems = []
    raid = answers.raid
    primary = answers.primary_disk.disk if answers.primary_disk else None
    if raid is not None and (primary or "").removeprefix("/dev/") != raid.device:
        message = (
            f'<raid device="{raid.device}"> is not the <primary-disk> '
            f"({primary or 'none named'}): this installer builds software RAID1 only to install "
            f"onto it; write <primary-disk>{raid.device}</primary-disk> or remove <raid>"
        )
        problems.append(where.problem("raid", message))
    if answers.primary_disk is not None and not answers.primary_disk.sr_at_end:
        problems.append(where.problem("primary-disk", SR_NOT_AT_END))
    return problems


def _scripts(answers: AnswerFile, where: Locations) -> list[Problem]:
    problems = []
    for i, script in enumerate(answers.scripts):
        scheme = urlsplit(script.location).scheme.lower()
        if script.type is SourceType.NFS:
            problems.append(where.problem(f"script#{i}", NFS_SCRIPT))
        elif script.type is SourceType.URL and scheme and scheme not in SCRIPT_SCHEMES:
            message = (
                f"script {script.location!r} cannot be fetched: the installer reads scripts "
                f"over {'|'.join(SCRIPT_SCHEMES)} only, not {scheme}; publish it on a web server"
            )
            problems.append(where.problem(f"script#{i}", message))
    return problems


def _sources(answers: AnswerFile, where: Locations) -> list[Problem]:
    """NFS, which the installer cannot mount, and every source after the first, which one
    install of one release would ignore."""
    problems = []
    for i, source in enumerate(answers.sources):
        nfs = source.type is SourceType.NFS or urlsplit(source.location).scheme.lower() == "nfs"
        if nfs:
            message = (
                "NFS sources are not supported: this installer cannot mount NFS; serve the "
                "release over http(s) (the provisioning server does) or ftp, or put it on a "
                f'medium labelled {LOCAL_MEDIA_LABEL} and write <source type="local"/>'
            )
            problems.append(where.problem(f"source#{i}", message))
        if i > 0:
            message = (
                f"found {len(answers.sources)} <source> elements: this installer lays down one "
                "release from one source and would ignore the others; keep only the first"
            )
            problems.append(where.problem(f"source#{i}", message))
    return problems
