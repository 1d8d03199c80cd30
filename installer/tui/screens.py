"""The questions of the interactive installer, in XCP-ng's order.

Each screen states its fields from the current draft and hardware, and on "Next" writes its part
back into the draft, returning the reasons it refuses (shown on the screen; the wizard does not
move on). Screens hold no urwid state and do no I/O, so they are tested as plain objects.
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from answerfiles.model import Mode, NtpSource, Proto, SourceType, SrType
from installer.discovery import Disk, Hardware
from installer.modes import ModeRefusedError, find_installation
from installer.tui.draft import Draft
from installer.tui.form import Checks, Choice, Entry, Field, Note

MIN_MEMORY = 2 << 30
MIN_DISK = 46 << 30
KEYMAPS = (
    "us", "uk", "de", "fr", "es", "it", "be", "ch", "dk", "fi", "no", "se", "pt", "nl", "pl",
    "cz", "hu", "ru", "jp106", "br-abnt2", "ca", "latam",
)
LICENCE = (
    "xcp-provision is free software, licensed under the GNU General Public License, version 2 "
    "or later. Xen and the Linux kernel of the control domain are licensed under the GNU GPL "
    "version 2. There is NO WARRANTY, to the extent permitted by law.\n\n"
    "Installing erases the disks you choose on the next screens."
)


@dataclass
class Context:
    """What the screens may look at: the draft and facts gathered before the first screen."""

    draft: Draft
    hardware: Hardware
    memory_bytes: int = MIN_MEMORY
    virtualisation: bool = True
    target_image: str | None = None
    # Disks whose backup partition carries the backup marker (found before the first screen).
    restorable: frozenset[str] = frozenset()
    saved_answerfile: str | None = None
    values: dict[str, Any] = field(default_factory=dict)


class Screen:
    key = ""
    title = ""
    help = ""

    def shown(self, ctx: Context) -> bool:
        return True

    def fields(self, ctx: Context) -> Mapping[str, Field]:
        return {}

    def submit(self, ctx: Context, values: Mapping[str, Any]) -> list[str]:
        return []

    def detail(self, ctx: Context, value: Any) -> str | None:
        """F5: more about the option under the cursor (disks); None when there is nothing."""
        return None


def size_text(size_bytes: int) -> str:
    gib = size_bytes / (1 << 30)
    return f"{gib / 1024:.1f} TiB" if gib >= 1024 else f"{gib:.0f} GiB"


def disk_line(disk: Disk) -> str:
    what = " ".join(p for p in (disk.vendor, disk.model) if p) or "unknown model"
    warn = "  [REMOVABLE/USB]" if disk.removable or disk.is_usb else ""
    return f"{disk.name:<10} {size_text(disk.size_bytes):>9}  {what[:30]}{warn}"


def disk_detail(disk: Disk) -> str:
    parts = ", ".join(
        f"{p.number}: {size_text(p.size_bytes)} {p.fstype or p.type or '?'}"
        + (f" '{p.label}'" if p.label else "")
        for p in disk.partitions
    )
    lines = [
        f"Disk {disk.path}",
        f"Vendor: {disk.vendor or 'unknown'}   Model: {disk.model or 'unknown'}",
        f"Serial: {disk.serial or 'unknown'}   WWN: {disk.wwn or 'unknown'}",
        f"Size: {size_text(disk.size_bytes)} ({disk.size_bytes} bytes)   Bus: {disk.bus or '?'}",
        f"Removable: {'yes' if disk.removable else 'no'}",
        f"Contents: {disk.table or 'no partition table'}"
        + (f"; {', '.join(disk.signatures)}" if disk.signatures else ""),
        f"Partitions: {parts or 'none'}",
    ]
    if disk.removable or disk.is_usb:
        lines.append("WARNING: removable or USB disk; is this really the one to erase?")
    return "\n".join(lines)


def existing_installations(hardware: Hardware) -> list[Disk]:
    """Disks holding an installation the upgrade backend would accept (see ``installer.modes``)."""
    found = []
    for disk in hardware.disks:
        try:
            find_installation(disk)
        except ModeRefusedError:
            continue
        found.append(disk)
    return found


class Keymap(Screen):
    key = "keymap"
    title = "Select Keymap"
    help = "The keyboard layout of this console and of the installed host."

    def fields(self, ctx: Context) -> Mapping[str, Field]:
        return {"keymap": Choice("Keymap:", [(k, k) for k in KEYMAPS], ctx.draft.keymap)}

    def submit(self, ctx: Context, values: Mapping[str, Any]) -> list[str]:
        ctx.draft.keymap = values["keymap"]
        return []


class Welcome(Screen):
    key = "welcome"
    title = "Welcome to xcp-provision"
    help = "This installer sets up Xen and its control domain (dom0) on this machine."

    def fields(self, ctx: Context) -> Mapping[str, Field]:
        return {"text": Note(
            "This installer puts Xen and a control domain on this host, as an XCP-ng 8.3 "
            "answer file would. The answers you give can be saved as an answer file at the end."
            "\n\nF12 or Next: continue.  Esc or Back: previous screen.  F1: help."
        )}


class Licence(Screen):
    key = "licence"
    title = "Licence"
    help = "You must accept the licence to install."

    def fields(self, ctx: Context) -> Mapping[str, Field]:
        return {
            "text": Note(LICENCE),
            "accept": Choice("", [(False, "I do not accept"), (True, "I accept")], False),
        }

    def submit(self, ctx: Context, values: Mapping[str, Any]) -> list[str]:
        return [] if values["accept"] else ["select 'I accept' to go on, or power off"]


class HardwareWarning(Screen):
    key = "hardware-warning"
    title = "Hardware warning"

    def shown(self, ctx: Context) -> bool:
        return ctx.memory_bytes < MIN_MEMORY or not ctx.virtualisation

    def fields(self, ctx: Context) -> Mapping[str, Field]:
        lines = []
        if ctx.memory_bytes < MIN_MEMORY:
            lines.append(f"This host has {size_text(ctx.memory_bytes)} of memory; "
                         f"Xen needs at least {size_text(MIN_MEMORY)}.")
        if not ctx.virtualisation:
            lines.append("Hardware virtualisation (VT-x/AMD-V) is off or absent: only PV guests "
                         "will run. Enable it in the firmware settings if you can.")
        return {"text": Note("\n".join(lines) + "\n\nYou may go on anyway.", "warning")}


class Action(Screen):
    key = "action"
    title = "Action"
    help = "Upgrade and restore are offered only when a disk holds an installation."

    def fields(self, ctx: Context) -> Mapping[str, Field]:
        options = [(Mode.FRESH, "Install (erases the chosen disk)")]
        if existing_installations(ctx.hardware):
            options.append((Mode.UPGRADE, "Upgrade the existing installation"))
        if ctx.restorable:
            options.append((Mode.RESTORE, "Restore from the backup of a previous upgrade"))
        return {"mode": Choice("What do you want to do?", options, ctx.draft.mode)}

    def submit(self, ctx: Context, values: Mapping[str, Any]) -> list[str]:
        ctx.draft.mode = values["mode"]
        return []


class PrimaryDiskScreen(Screen):
    key = "primary-disk"
    title = "Primary disk"
    help = ("The disk to install Xen and dom0 on. F5 shows vendor, model, serial, size, bus "
            "and what the disk holds now. Removable and USB disks are marked.")

    def _disks(self, ctx: Context) -> list[Disk]:
        if ctx.draft.mode is Mode.FRESH:
            return list(ctx.hardware.disks)
        if ctx.draft.mode is Mode.RESTORE:
            return [d for d in ctx.hardware.disks if d.path in ctx.restorable]
        return existing_installations(ctx.hardware)

    def fields(self, ctx: Context) -> Mapping[str, Field]:
        disks = self._disks(ctx)
        if not disks:
            return {"text": Note("No disk was found. Check cables and firmware settings.",
                                 "error")}
        options = [(d.path, disk_line(d)) for d in disks]
        return {"disk": Choice("Select the disk:", options, ctx.draft.primary_disk)}

    def submit(self, ctx: Context, values: Mapping[str, Any]) -> list[str]:
        path = values.get("disk")
        if path is None:
            return ["there is no disk to install on"]
        disk = ctx.hardware.disk(path)
        if disk is not None and disk.size_bytes < MIN_DISK and ctx.draft.mode is Mode.FRESH:
            return [f"{disk.name} has {size_text(disk.size_bytes)}; the primary disk needs "
                    f"at least {size_text(MIN_DISK)}"]
        ctx.draft.primary_disk = path
        ctx.draft.guest_disks = [g for g in ctx.draft.guest_disks if g != path]
        return []

    def detail(self, ctx: Context, value: Any) -> str | None:
        disk = ctx.hardware.disk(value) if isinstance(value, str) else None
        return disk_detail(disk) if disk else None


class GuestDisks(Screen):
    key = "guest-disks"
    title = "Virtual machine storage"
    help = "Extra whole disks for the local storage repository. Each is erased."

    def shown(self, ctx: Context) -> bool:
        return ctx.draft.mode is Mode.FRESH and len(ctx.hardware.disks) > 1

    def fields(self, ctx: Context) -> Mapping[str, Field]:
        options = [(d.path, disk_line(d)) for d in ctx.hardware.disks
                   if d.path != ctx.draft.primary_disk]
        return {"disks": Checks("Also use these disks for VM storage:", options,
                                ctx.draft.guest_disks)}

    def submit(self, ctx: Context, values: Mapping[str, Any]) -> list[str]:
        ctx.draft.guest_disks = list(values["disks"])
        return []

    def detail(self, ctx: Context, value: Any) -> str | None:
        disk = ctx.hardware.disk(value) if isinstance(value, str) else None
        return disk_detail(disk) if disk else None


class SrTypeScreen(Screen):
    key = "sr-type"
    title = "Storage type"
    help = "ext: thin provisioning on a file system. lvm: thick provisioning."

    def shown(self, ctx: Context) -> bool:
        return ctx.draft.mode is Mode.FRESH

    def fields(self, ctx: Context) -> Mapping[str, Field]:
        options = [(SrType.EXT, "EXT (thin provisioning)"), (SrType.LVM, "LVM (thick)")]
        return {"sr": Choice("Local storage repository type:", options, ctx.draft.sr_type)}

    def submit(self, ctx: Context, values: Mapping[str, Any]) -> list[str]:
        ctx.draft.sr_type = values["sr"]
        return []


class SourceScreen(Screen):
    key = "source"
    title = "Installation source"
    help = ("The URL of a release directory (holding manifest.json): http, https or file. "
            "The installer fetches Xen and dom0 from there and checks every checksum.")

    def fields(self, ctx: Context) -> Mapping[str, Field]:
        return {
            "text": Note("Where is the release?"),
            "url": Entry("URL", ctx.draft.source_url),
        }

    def submit(self, ctx: Context, values: Mapping[str, Any]) -> list[str]:
        url = values["url"].strip()
        scheme = url.partition(":")[0].lower()
        if scheme not in ("http", "https", "file"):
            return [f"{url!r} is not an http, https or file URL of a release directory"]
        ctx.draft.source_type = SourceType.URL
        ctx.draft.source_url = url
        return ctx.draft.problems("source")


class Password(Screen):
    key = "password"
    title = "Root password"
    help = "At least 6 characters. It is stored only as a SHA-512 hash."

    def shown(self, ctx: Context) -> bool:
        return ctx.draft.mode is Mode.FRESH

    def fields(self, ctx: Context) -> Mapping[str, Field]:
        return {"first": Entry("Password", secret=True),
                "second": Entry("Again   ", secret=True)}

    def submit(self, ctx: Context, values: Mapping[str, Any]) -> list[str]:
        return ctx.draft.set_password(values["first"], values["second"])


class ManagementNic(Screen):
    key = "nic"
    title = "Management interface"
    help = "The NIC that carries management traffic (and reaches the provisioning server)."

    def shown(self, ctx: Context) -> bool:
        return ctx.draft.mode is Mode.FRESH and len(ctx.hardware.nics) > 1

    def fields(self, ctx: Context) -> Mapping[str, Field]:
        options = [
            (n.name, f"{n.name:<10} {n.mac or '?':<17}  {n.driver or '?':<10} "
                     f"{'link up' if n.link else 'no link'}")
            for n in ctx.hardware.nics
        ]
        return {"nic": Choice("Select the management NIC:", options, ctx.draft.nic)}

    def submit(self, ctx: Context, values: Mapping[str, Any]) -> list[str]:
        ctx.draft.nic = values["nic"]
        return []


class NetworkConfig(Screen):
    key = "network"
    title = "Management network"
    help = "DHCP, or a static address. VLAN: 1-4094, empty for none."

    def shown(self, ctx: Context) -> bool:
        return ctx.draft.mode is Mode.FRESH

    def fields(self, ctx: Context) -> Mapping[str, Field]:
        d = ctx.draft
        return {
            "proto": Choice("IPv4:", [(Proto.DHCP, "Automatic (DHCP)"),
                                      (Proto.STATIC, "Static")], d.proto),
            "ipaddr": Entry("IP address", d.ipaddr),
            "subnet": Entry("Netmask   ", d.subnet),
            "gateway": Entry("Gateway   ", d.gateway),
            "vlan": Entry("VLAN      ", d.vlan),
        }

    def submit(self, ctx: Context, values: Mapping[str, Any]) -> list[str]:
        d = ctx.draft
        d.proto = values["proto"]
        d.ipaddr, d.subnet, d.gateway = values["ipaddr"], values["subnet"], values["gateway"]
        d.vlan = values["vlan"].strip()
        if d.vlan and not d.vlan.isdigit():
            return [f"VLAN {d.vlan!r} is not a number: give 1-4094 or leave it empty"]
        if ctx.draft.nic is None:
            return ["no network interface was found to manage this host"]
        return d.problems("admin-interface", "ipaddr", "subnet", "gateway")


class HostnameDns(Screen):
    key = "hostname"
    title = "Host name and DNS"
    help = "A fully qualified host name; name servers separated by spaces or commas."

    def shown(self, ctx: Context) -> bool:
        return ctx.draft.mode is Mode.FRESH

    def fields(self, ctx: Context) -> Mapping[str, Field]:
        return {"hostname": Entry("Host name  ", ctx.draft.hostname),
                "dns": Entry("Name servers", " ".join(ctx.draft.name_servers))}

    def submit(self, ctx: Context, values: Mapping[str, Any]) -> list[str]:
        ctx.draft.hostname = values["hostname"].strip()
        ctx.draft.name_servers = values["dns"].replace(",", " ").split()
        return ctx.draft.problems("hostname", "name-server")


@cache
def _zones() -> dict[str, list[str]]:
    regions: dict[str, list[str]] = {}
    for name in sorted(zoneinfo.available_timezones()):
        region, _, city = name.partition("/")
        if city and not region.startswith(("SystemV", "posix", "right")):
            regions.setdefault(region, []).append(city)
    return regions


class TimezoneRegion(Screen):
    key = "tz-region"
    title = "Time zone"
    help = "First the region, then the city."

    def shown(self, ctx: Context) -> bool:
        return ctx.draft.mode is Mode.FRESH

    def fields(self, ctx: Context) -> Mapping[str, Field]:
        current = ctx.draft.timezone.partition("/")[0]
        return {"region": Choice("Region:", [(r, r) for r in _zones()], current)}

    def submit(self, ctx: Context, values: Mapping[str, Any]) -> list[str]:
        region = values["region"]
        if not ctx.draft.timezone.startswith(f"{region}/"):
            ctx.draft.timezone = f"{region}/{_zones()[region][0]}"
        return []


class TimezoneCity(Screen):
    key = "tz-city"
    title = "Time zone: city"

    def shown(self, ctx: Context) -> bool:
        return ctx.draft.mode is Mode.FRESH

    def fields(self, ctx: Context) -> Mapping[str, Field]:
        region, _, city = ctx.draft.timezone.partition("/")
        return {"city": Choice(f"{region}:", [(c, c) for c in _zones()[region]], city)}

    def submit(self, ctx: Context, values: Mapping[str, Any]) -> list[str]:
        region = ctx.draft.timezone.partition("/")[0]
        ctx.draft.timezone = f"{region}/{values['city']}"
        return ctx.draft.problems("timezone")


class TimeSync(Screen):
    key = "ntp"
    title = "Time synchronisation"
    help = "NTP servers from DHCP, the default pool, your own servers, or none."

    def shown(self, ctx: Context) -> bool:
        return ctx.draft.mode is Mode.FRESH

    def fields(self, ctx: Context) -> Mapping[str, Field]:
        options = [(NtpSource.DHCP, "Servers given by DHCP"),
                   (NtpSource.DEFAULT, "Default public servers"),
                   (NtpSource.MANUAL, "These servers:"),
                   (NtpSource.NONE, "No time synchronisation")]
        return {"source": Choice("NTP:", options, ctx.draft.ntp_source),
                "servers": Entry("Servers", " ".join(ctx.draft.ntp_servers))}

    def submit(self, ctx: Context, values: Mapping[str, Any]) -> list[str]:
        ctx.draft.ntp_source = values["source"]
        ctx.draft.ntp_servers = values["servers"].replace(",", " ").split()
        if ctx.draft.ntp_source is NtpSource.MANUAL and not ctx.draft.ntp_servers:
            return ["'These servers' needs at least one NTP server name or address"]
        if ctx.draft.ntp_source is NtpSource.DHCP and ctx.draft.proto is not Proto.DHCP:
            return ["the management interface is static, so DHCP gives no NTP servers: "
                    "choose another option"]
        return ctx.draft.problems("ntp", "ntp-server")


class Confirm(Screen):
    key = "confirm"
    title = "Confirm installation"
    help = ("Last chance: the disks listed are erased when you go on. Give a path to save "
            "these answers as an XCP-ng answer file for unattended installs.")

    def _erased(self, ctx: Context) -> list[Disk]:
        paths = [ctx.draft.primary_disk, *ctx.draft.guest_disks]
        found = (ctx.hardware.disk(p) for p in paths if p)
        return [d for d in found if d is not None]

    def fields(self, ctx: Context) -> Mapping[str, Field]:
        d = ctx.draft
        if d.mode is Mode.FRESH:
            lines = ["These disks will be ERASED:"] + [
                f"  {disk.path}: {disk.model or 'unknown model'}, serial "
                f"{disk.serial or 'unknown'}, {size_text(disk.size_bytes)}"
                for disk in self._erased(ctx)
            ]
            net = ("DHCP" if d.proto is Proto.DHCP
                   else f"{d.ipaddr} netmask {d.subnet} gateway {d.gateway}")
            lines += [
                f"Management: {d.nic} {net}" + (f" VLAN {d.vlan}" if d.vlan else ""),
                f"Host name: {d.hostname}   Time zone: {d.timezone}",
            ]
        else:
            lines = [f"{d.mode.value.capitalize()} the installation on {d.primary_disk}."]
        lines.append(f"Source: {d.source_url or d.source_type.value}")
        return {"summary": Note("\n".join(lines), "warning"),
                "save": Entry("Save answer file to (optional)", ctx.saved_answerfile or "")}

    def submit(self, ctx: Context, values: Mapping[str, Any]) -> list[str]:
        ctx.saved_answerfile = values["save"].strip() or None
        return ctx.draft.problems("source", "primary-disk", "admin-interface",
                                  "existing-installation")


def question_screens() -> list[Screen]:
    """Every question screen, in the order XCP-ng's installer asks them."""
    return [Keymap(), Welcome(), Licence(), HardwareWarning(), Action(), PrimaryDiskScreen(),
            GuestDisks(), SrTypeScreen(), SourceScreen(), Password(), ManagementNic(),
            NetworkConfig(), HostnameDns(), TimezoneRegion(), TimezoneCity(), TimeSync(),
            Confirm()]
