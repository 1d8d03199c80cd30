"""Host configuration written into the installed dom0 root, before its first boot.

Everything here is a file under the target root, so every function takes the root path and
writes plain text: no chroot, no service manager, nothing that needs the target to run. dom0 is
Debian with ifupdown, so the management network (``installer.dom0_network``: the NIC on bridge
``xenbr0``) goes to ``/etc/network/interfaces.d``; XAPI facts go to ``/etc/xensource-inventory``
in XCP-ng's ``KEY='value'`` format, so tools written for XCP-ng find what they expect.
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from answerfiles.model import (
    AnswerFile,
    NetworkBackend,
    NtpSource,
    ServiceState,
    SrType,
)
from common import dom0_layout, registration_key
from common.dom0_layout import inside
from installer import dom0_network
from installer.dom0_network import ManagementNetwork
from installer.errors import FailedError

INVENTORY = "etc/xensource-inventory"
NETWORK_CONF = "etc/xensource/network.conf"
# Where XCP-ng's installer leaves the local SR's type and devices for the first boot to create.
STORAGE_CONF = "etc/firstboot.d/data/default-storage.conf"
DEFAULT_NTP = tuple(f"{i}.debian.pool.ntp.org" for i in range(4))
# XCP-ng names services as on CentOS; dom0 is Debian.
SERVICE_UNITS = {"sshd": "ssh"}
PRODUCT_BRAND = "XCP-provision"


class HostConfigError(FailedError):
    """A configuration file in the target root could not be written."""


@dataclass(frozen=True)
class Labels:
    """Filesystem labels on the primary disk; fstab and the kernel find everything by these."""

    root: str
    logs: str | None = None
    swap: str | None = None
    esp: str | None = None


@dataclass(frozen=True)
class Identity:
    installation_uuid: str
    control_domain_uuid: str
    machine_id: str

    @classmethod
    def new(cls) -> Identity:
        return cls(str(uuid.uuid4()), str(uuid.uuid4()), uuid.uuid4().hex)


@dataclass(frozen=True)
class LocalStorage:
    """The local SR the answer file asked for: its type and the devices it spans."""

    sr_type: SrType
    devices: tuple[str, ...]


@dataclass(frozen=True)
class HostFacts:
    """What the inventory records beyond the answer file."""

    primary_disk: str
    backup_partition: str | None
    partition_layout: tuple[str, ...]
    dom0_mem_mib: int
    dom0_vcpus: int
    xen_version: str
    kernel_version: str
    product_version: str
    management_interface: str  # the NIC; the inventory names the bridge over it
    management_mac: str | None
    uefi: bool
    management_address_type: str = "IPv4"
    local_storage: LocalStorage | None = None


def configure(
    root: Path, answers: AnswerFile, labels: Labels, facts: HostFacts, identity: Identity
) -> str:
    """Write every host configuration file the answer file asks for; returns the sha256 of the
    registration key written for the first-boot agent (:func:`write_firstboot`)."""
    network = (
        ManagementNetwork(
            answers.admin_interface,
            facts.management_interface,
            facts.management_mac,
            answers.network_backend,
        )
        if answers.admin_interface
        else None
    )
    try:
        write_hostname(root, answers.hostname)
        write_network(root, network)
        write_resolv_conf(root, answers.name_servers, answers.hostname)
        write_ntp(root, answers.ntp.source, answers.ntp.servers)
        write_timezone(root, answers.timezone)
        write_keymap(root, answers.keymap)
        write_root_password(root, answers.root_password_hash)
        write_machine_id(root, identity.machine_id)
        write_services(root, answers)
        write_network_backend(root, answers.network_backend)
        write_fstab(root, labels)
        write_inventory(
            root, facts, identity, labels, network.device if network else facts.management_interface
        )
        write_local_storage(root, facts.local_storage)
        return write_firstboot(root, answers, facts.management_mac)
    except OSError as exc:
        raise HostConfigError(
            f"cannot write the host configuration into {root}: {exc.filename}: {exc.strerror}"
        ) from exc


def _write(root: Path, rel: str, text: str, mode: int = 0o644) -> Path:
    path = inside(root, rel)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.chmod(mode)
    os.replace(tmp, path)
    return path


def write_hostname(root: Path, hostname: str) -> None:
    short = hostname.split(".", 1)[0]
    _write(root, "etc/hostname", f"{hostname}\n")
    names = f"{hostname} {short}" if short != hostname else hostname
    _write(
        root,
        "etc/hosts",
        f"127.0.0.1\tlocalhost\n127.0.1.1\t{names}\n"
        "::1\tlocalhost ip6-localhost ip6-loopback\nff02::1\tip6-allnodes\n"
        "ff02::2\tip6-allrouters\n",
    )


def write_network(root: Path, network: ManagementNetwork | None) -> None:
    if network is None:
        return
    _write(root, dom0_layout.MANAGEMENT_INTERFACE_FILE, dom0_network.interfaces_text(network))
    if network.mac:
        # Pin the name: dom0's kernel may enumerate NICs differently from the installer's.
        _write(
            root,
            "etc/systemd/network/10-xcp-management.link",
            f"[Match]\nMACAddress={network.mac}\n\n[Link]\nName={network.nic}\n",
        )


def write_network_backend(root: Path, backend: NetworkBackend) -> None:
    """XCP-ng's record of the network backend, and Xen's vif defaults for the same backend
    (the image's ``xl.conf`` edited in place, so Debian's other settings stay)."""
    _write(root, NETWORK_CONF, f"{backend.value}\n")
    xl_conf = inside(root, dom0_network.XL_CONF)
    current = xl_conf.read_text() if xl_conf.exists() else ""
    _write(root, dom0_network.XL_CONF, dom0_network.xl_conf_text(current, backend))


def write_resolv_conf(root: Path, name_servers: tuple[str, ...], hostname: str) -> None:
    if not name_servers:
        return
    domain = hostname.split(".", 1)[1] if "." in hostname else ""
    lines = [f"search {domain}"] if domain else []
    lines += [f"nameserver {ns}" for ns in name_servers]
    resolv = root / "etc/resolv.conf"
    if resolv.is_symlink():
        resolv.unlink()
    _write(root, "etc/resolv.conf", "\n".join(lines) + "\n")


def write_ntp(root: Path, source: NtpSource, servers: tuple[str, ...]) -> None:
    """systemd-timesyncd: explicit servers, Debian's pool, DHCP's servers, or off."""
    unit = root / "etc/systemd/system/systemd-timesyncd.service"
    if source == NtpSource.NONE:
        unit.parent.mkdir(parents=True, exist_ok=True)
        if unit.is_symlink() or unit.exists():
            unit.unlink()
        unit.symlink_to("/dev/null")
        return
    chosen = servers if source == NtpSource.MANUAL else DEFAULT_NTP
    text = "# Written by xcp-provision\n[Time]\n"
    if source == NtpSource.DHCP:
        text += f"FallbackNTP={' '.join(DEFAULT_NTP)}\n"
    else:
        text += f"NTP={' '.join(chosen)}\n"
    _write(root, "etc/systemd/timesyncd.conf.d/xcp-provision.conf", text)


def write_timezone(root: Path, timezone: str) -> None:
    _write(root, "etc/timezone", f"{timezone}\n")
    localtime = root / "etc/localtime"
    if localtime.is_symlink() or localtime.exists():
        localtime.unlink()
    localtime.symlink_to(f"/usr/share/zoneinfo/{timezone}")


def write_keymap(root: Path, keymap: str) -> None:
    layout, _, variant = keymap.partition("-")
    _write(
        root,
        "etc/default/keyboard",
        f'XKBMODEL="pc105"\nXKBLAYOUT="{layout}"\nXKBVARIANT="{variant}"\nXKBOPTIONS=""\n'
        'BACKSPACE="guess"\n',
    )
    _write(root, "etc/vconsole.conf", f"KEYMAP={keymap}\n")


def write_root_password(root: Path, password_hash: str | None) -> None:
    """Put the hash in root's shadow entry; without one, root stays locked as XCP-ng leaves it."""
    shadow = root / "etc/shadow"
    lines = shadow.read_text().splitlines() if shadow.exists() else []
    new_hash = password_hash or "!"
    days = int(datetime.now(UTC).timestamp() // 86400)
    out, found = [], False
    for line in lines:
        fields = line.split(":")
        if fields[0] == "root" and len(fields) >= 3:
            fields[1], fields[2] = new_hash, str(days)
            found = True
        out.append(":".join(fields))
    if not found:
        out.insert(0, f"root:{new_hash}:{days}:0:99999:7:::")
    _write(root, "etc/shadow", "\n".join(out) + "\n", mode=0o640)


def write_machine_id(root: Path, machine_id: str) -> None:
    _write(root, "etc/machine-id", f"{machine_id}\n", mode=0o444)


def write_services(root: Path, answers: AnswerFile) -> None:
    wants = root / "etc/systemd/system/multi-user.target.wants"
    for service in answers.services:
        unit = f"{SERVICE_UNITS.get(service.name, service.name)}.service"
        link = wants / unit
        if service.state == ServiceState.ENABLED:
            wants.mkdir(parents=True, exist_ok=True)
            if not link.is_symlink():
                link.symlink_to(f"/lib/systemd/system/{unit}")
        elif link.is_symlink():
            link.unlink()


# systemd gives a device 90 s to appear before it drops to emergency mode. A host whose
# controllers enumerate slowly (or a loaded lab VM) can take longer to have its label links;
# waiting longer costs nothing when they come sooner.
_DEVICE_WAIT = "x-systemd.device-timeout=300s"


def fstab_text(labels: Labels) -> str:
    """The installed dom0's fstab. Swap is ``nofail``: a host that boots without it is better
    than one stopped at an emergency shell over it."""
    rows = [("# <file system>", "<mount point>", "<type>", "<options>", "<dump>", "<pass>")]
    rows.append((f"LABEL={labels.root}", "/", "ext3", "defaults,errors=remount-ro", "1", "1"))
    if labels.logs:
        rows.append(
            (f"LABEL={labels.logs}", "/var/log", "ext3", f"defaults,{_DEVICE_WAIT}", "0", "2")
        )
    if labels.swap:
        rows.append((f"LABEL={labels.swap}", "none", "swap", f"sw,nofail,{_DEVICE_WAIT}", "0", "0"))
    if labels.esp:
        rows.append((f"LABEL={labels.esp}", "/boot/efi", "vfat", "umask=0077", "0", "2"))
    return "".join("\t".join(row) + "\n" for row in rows)


def write_fstab(root: Path, labels: Labels) -> None:
    _write(root, "etc/fstab", fstab_text(labels))
    for mountpoint in ("var/log", "boot/efi" if labels.esp else ""):
        if mountpoint:
            (root / mountpoint).mkdir(parents=True, exist_ok=True)


def write_local_storage(root: Path, storage: LocalStorage | None) -> None:
    """The SR request in XCP-ng's first-boot format (both its key names), as its installer
    leaves it; without guest storage nothing is written, as there."""
    if storage is None:
        return
    devices = " ".join(storage.devices)
    _write(
        root,
        STORAGE_CONF,
        f"XSPARTITIONS='{devices}'\nXSTYPE='{storage.sr_type.value}'\n"
        f"PARTITIONS='{devices}'\nTYPE='{storage.sr_type.value}'\n",
    )


def inventory_text(
    facts: HostFacts, identity: Identity, labels: Labels, management_interface: str
) -> str:
    """The inventory; ``management_interface`` is where the address lives (``xenbr0``, as XCP-ng
    records it), not the NIC under it."""
    values = {
        "PRODUCT_BRAND": PRODUCT_BRAND,
        "PRODUCT_NAME": "xcp-provision",
        "PRODUCT_VERSION": facts.product_version,
        "PLATFORM_NAME": "XCP",
        "XEN_VERSION": facts.xen_version,
        "LINUX_KABI_VERSION": facts.kernel_version,
        "INSTALLATION_DATE": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f"),
        "INSTALLATION_UUID": identity.installation_uuid,
        "CONTROL_DOMAIN_UUID": identity.control_domain_uuid,
        "PRIMARY_DISK": facts.primary_disk,
        "BACKUP_PARTITION": facts.backup_partition or "",
        "MANAGEMENT_INTERFACE": management_interface,
        "MANAGEMENT_ADDRESS_TYPE": facts.management_address_type,
        "PARTITION_LAYOUT": ",".join(facts.partition_layout),
        "DOM0_MEM": str(facts.dom0_mem_mib),
        "DOM0_VCPUS": str(facts.dom0_vcpus),
        "ROOT_LABEL": labels.root,
        "FIRMWARE": "uefi" if facts.uefi else "bios",
    }
    return "".join(f"{key}='{value}'\n" for key, value in values.items())


def write_inventory(
    root: Path, facts: HostFacts, identity: Identity, labels: Labels, management_interface: str
) -> None:
    _write(root, INVENTORY, inventory_text(facts, identity, labels, management_interface))


def read_inventory(root: Path) -> dict[str, str]:
    """The inventory as a dict; empty when the root has none (not an installation)."""
    path = root / INVENTORY
    if not path.exists():
        return {}
    values = {}
    for line in path.read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep:
            values[key.strip()] = value.strip().strip("'")
    return values


def write_firstboot(root: Path, answers: AnswerFile, mac: str | None) -> str:
    """The first-boot agent's brief; readable by root only, since it carries the token and a new
    registration key. Returns the key's sha256, for build-done to announce: the server then
    admits the registration that holds the key from any address (common.registration_key)."""
    prov = answers.provisioning
    key = registration_key.new_key()
    config = {
        "server_url": prov.server_url,
        "token": prov.token,
        "pool": prov.pool,
        "hostname": answers.hostname,
        "mac": mac,
        registration_key.FIELD: key,
    }
    _write(root, dom0_layout.FIRSTBOOT_CONFIG, json.dumps(config, indent=2) + "\n", mode=0o600)
    return registration_key.digest(key)
