"""Each element and attribute XCP-ng 8.3's parser reads is honoured here or refused, with why.

One case or more per row of the parity table in docs/answerfile.md (``Case.row`` is that
table's first column): an answer file, and what must come of it (a model value, or an error or
a warning at a given element, with its sentence). What the installer then does with an honoured
value (the plan, the host configuration, the scripts) is tested where that happens, in
tests/installer/. The last test holds the table and these cases to each other, so a row cannot
lose its test.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from passlib.hash import sha512_crypt

from answerfiles.errors import AnswerFileError
from answerfiles.model import (
    AnswerFile,
    BootloaderLocation,
    Mode,
    NetworkBackend,
    NtpSource,
    PreserveFirstPartition,
    Proto,
    ProtoV6,
    ScriptStage,
    ServiceState,
    SrType,
)
from answerfiles.parse import Parsed, parse_answerfile

DOC = Path(__file__).resolve().parents[2] / "docs" / "answerfile.md"
SRC = '<source type="url">http://repo.example.com/xcp-ng/</source>'
DISK = "<primary-disk>sda</primary-disk>"
IFACE = '<admin-interface name="eth0" proto="dhcp"/>'
HASH = "$6$saltsalt$" + "a" * 86
SCRIPT = "http://hooks.example.com/hook.sh"
# Rows whose cases live with the code another change brought (the source readers).
ELSEWHERE = {
    '`<source type="url">`': "tests/answerfiles/test_af_sources.py",
    '`<source type="nfs">`, `nfs://` URLs': "tests/answerfiles/test_af_sources.py",
    '`<source type="local">`': "tests/answerfiles/test_af_sources.py",
    "several `<source>`": "tests/answerfiles/test_af_sources.py",
    "`gpgcheck`, `repo-gpgcheck` (root and `<source>`)": "tests/installer/test_release_trust.py",
}


def fresh(*inner: str, root: str = "<installation>") -> str:
    """A fresh install's file: the mandatory parts first, then ``inner``."""
    tag = root[1:].split(maxsplit=1)[0].rstrip(">")
    return "\n".join([root, DISK, SRC, IFACE, *inner, f"</{tag}>"])


def bare(*inner: str, root: str = "<installation>") -> str:
    """``inner`` alone below ``root``: for the mandatory elements themselves."""
    tag = root[1:].split(maxsplit=1)[0].rstrip(">")
    return "\n".join([root, *inner, f"</{tag}>"])


def upgrade(*inner: str, root: str = '<installation mode="upgrade">') -> str:
    return bare("<existing-installation>sda</existing-installation>", SRC, *inner, root=root)


def restore(*inner: str) -> str:
    return bare(*inner, root="<restore>")


@dataclass(frozen=True)
class Honoured:
    """The file is valid and the model carries the value the installer acts on."""

    check: Callable[[AnswerFile], bool]
    warning: str | None = None  # a warning that must come with it, when the row promises one


@dataclass(frozen=True)
class Refused:
    """The file is invalid: an error at ``path`` whose message starts with ``message``."""

    path: str
    message: str


@dataclass(frozen=True)
class Warned:
    """The file is valid, and a warning at ``path`` says the element is ignored and why."""

    path: str
    message: str


Outcome = Honoured | Refused | Warned


@dataclass(frozen=True)
class Case:
    row: str
    xml: str
    outcome: Outcome


def iface(af: AnswerFile):
    return af.admin_interface


CASES = [
    # -- the root and the modes --------------------------------------------------------------
    Case("`<installation>`", fresh(), Honoured(lambda af: af.mode is Mode.FRESH)),
    Case(
        "`<upgrade>`",
        fresh(root="<upgrade>"),
        Honoured(lambda af: af.mode is Mode.FRESH, warning="is a FRESH install"),
    ),
    Case(
        "`<upgrade>`",
        upgrade(root='<upgrade mode="upgrade">'),
        Honoured(lambda af: af.mode is Mode.UPGRADE),
    ),
    Case("`<restore>`", restore(), Honoured(lambda af: af.mode is Mode.RESTORE)),
    Case(
        "any other root element",
        bare(DISK, root="<install>"),
        Refused("install", "root element <install> is not an answer file"),
    ),
    Case(
        '`mode="fresh"`',
        fresh(root='<installation mode="fresh">'),
        Honoured(lambda af: af.mode is Mode.FRESH),
    ),
    Case(
        '`mode="reinstall"`',
        fresh(root='<installation mode="reinstall">'),
        Refused("installation", 'mode="reinstall" is not supported yet: XCP-ng keeps a backup'),
    ),
    Case('`mode="upgrade"`', upgrade(), Honoured(lambda af: af.mode is Mode.UPGRADE)),
    Case(
        "any other `mode`",
        fresh(root='<installation mode="repair">'),
        Refused("installation", 'mode="repair" is not allowed: allowed fresh|reinstall|upgrade'),
    ),
    # -- read in every mode ------------------------------------------------------------------
    Case(
        "`<driver-source>`",
        fresh('<driver-source type="url">http://repo.example.com/drivers/</driver-source>'),
        Refused("installation/driver-source", "<driver-source> is not supported"),
    ),
    Case(
        "`<driver-source>`",
        restore('<driver-source type="local"/>'),
        Refused("restore/driver-source", "<driver-source> is not supported"),
    ),
    Case(
        "`<fcoe-interface>`",
        fresh('<fcoe-interface name="eth2"/>'),
        Refused("installation/fcoe-interface", "<fcoe-interface> is not supported"),
    ),
    Case(
        "`<fcoe-interface>`",
        restore('<fcoe-interface hwaddr="00:16:3e:00:00:02"/>'),
        Refused("restore/fcoe-interface", "<fcoe-interface> is not supported"),
    ),
    Case(
        "`<ui-confirmation-prompt>`",
        fresh("<ui-confirmation-prompt>false</ui-confirmation-prompt>"),
        Honoured(lambda af: af.ui_confirmation_prompt is False),
    ),
    Case(
        "`<ui-confirmation-prompt>`",
        fresh("<ui-confirmation-prompt>yes</ui-confirmation-prompt>"),
        Refused("installation/ui-confirmation-prompt", "<ui-confirmation-prompt> is not supported"),
    ),
    # -- stage scripts -----------------------------------------------------------------------
    Case(
        '`<script stage="..." type="url">`',
        fresh(
            f'<script stage="installation-start" type="url">{SCRIPT}</script>',
            f'<script stage="filesystem-populated" type="url">{SCRIPT}</script>',
            f'<script stage="installation-complete" type="url">{SCRIPT}</script>',
        ),
        Honoured(lambda af: [s.stage for s in af.scripts] == list(ScriptStage)),
    ),
    Case(
        '`<script stage="..." type="url">`',
        upgrade(f'<script stage="installation-complete" type="url">{SCRIPT}</script>'),
        Honoured(lambda af: af.scripts[0].location == SCRIPT),
    ),
    Case(
        '`<script stage="..." type="url">`',
        restore(f'<script stage="installation-start" type="url">{SCRIPT}</script>'),
        Honoured(lambda af: af.scripts[0].stage is ScriptStage.INSTALLATION_START),
    ),
    Case(
        '`<script type="nfs">`, `ftp://` or `nfs://` script URLs',
        fresh('<script stage="installation-start" type="nfs">nfs.example.com:/s/hook.sh</script>'),
        Refused("installation/script", 'type="nfs" scripts are not supported'),
    ),
    Case(
        '`<script type="nfs">`, `ftp://` or `nfs://` script URLs',
        fresh(
            '<script stage="installation-start" type="url">ftp://ftp.example.com/hook.sh</script>'
        ),
        Refused("installation/script", "script 'ftp://ftp.example.com/hook.sh' cannot be fetched"),
    ),
    Case(
        '`<script stage="filesystem-populated">` in `<restore>`',
        restore(f"<post-install-script>{SCRIPT}</post-install-script>"),
        Warned("restore/post-install-script", "a filesystem-populated script does nothing"),
    ),
    Case(
        "`<post-install-script>`",
        upgrade(f'<post-install-script type="url">{SCRIPT}</post-install-script>'),
        Honoured(lambda af: af.scripts[0].stage is ScriptStage.FILESYSTEM_POPULATED),
    ),
    Case(
        "`<install-failed-script>`",
        restore(f"<install-failed-script>{SCRIPT}</install-failed-script>"),
        Honoured(lambda af: af.scripts[0].stage is ScriptStage.INSTALLATION_COMPLETE),
    ),
    # -- read by every install mode ----------------------------------------------------------
    Case(
        "`<network-backend>`",
        fresh("<network-backend>bridge</network-backend>"),
        Honoured(lambda af: af.network_backend is NetworkBackend.BRIDGE),
    ),
    Case(
        "`<network-backend>`",
        upgrade("<network-backend>vswitch</network-backend>"),
        Honoured(lambda af: af.network_backend is NetworkBackend.OPENVSWITCH),
    ),
    Case(
        "`<network-backend>`",
        fresh("<network-backend>linuxbridge</network-backend>"),
        Refused("installation/network-backend", "network backend 'linuxbridge' is not allowed"),
    ),
    Case(
        "`<bootloader>` text",
        fresh("<bootloader>grub2</bootloader>"),
        Honoured(lambda af: af.bootloader.location is BootloaderLocation.MBR),
    ),
    Case(
        "`<bootloader>` text",
        fresh("<bootloader>extlinux</bootloader>"),
        Refused("installation/bootloader", "bootloader 'extlinux' is not available"),
    ),
    Case(
        '`<bootloader location="...">`',
        upgrade('<bootloader location="mbr"/>'),
        Honoured(lambda af: af.bootloader.location is BootloaderLocation.MBR),
    ),
    Case(
        '`<bootloader location="...">`',
        fresh('<bootloader location="partition"/>'),
        Refused("installation/bootloader", 'location="partition" is not supported'),
    ),
    Case(
        '`<bootloader write-boot-entry="...">`',
        fresh('<bootloader write-boot-entry="no"/>'),
        Honoured(lambda af: af.bootloader.write_boot_entry is False),
    ),
    # -- fresh install -----------------------------------------------------------------------
    Case(
        "`<raid device>` with `<disk>`",
        bare(
            '<raid device="md127"><disk>sdb</disk><disk>sdc</disk></raid>',
            "<primary-disk>md127</primary-disk>",
            SRC,
            IFACE,
        ),
        Honoured(lambda af: af.raid.disks == ("sdb", "sdc") and af.primary_disk.disk == "md127"),
    ),
    Case(
        "`<raid device>` with `<disk>`",
        fresh('<raid device="md127"><disk>sdb</disk><disk>sdc</disk></raid>'),
        Refused("installation/raid", '<raid device="md127"> is not the <primary-disk> (sda)'),
    ),
    Case(
        "`<raid device>` with `<disk>`",
        bare(
            '<raid device="md127"><disk>sdb</disk></raid>',
            "<primary-disk>md127</primary-disk>",
            SRC,
            IFACE,
        ),
        Refused("installation/raid", "found 1 <disk> (sdb): RAID1 needs at least two"),
    ),
    Case(
        "`<primary-disk>`",
        bare("<primary-disk>disk/by-id/wwn-0x5000c500a1b2c3d4</primary-disk>", SRC, IFACE),
        Honoured(lambda af: af.primary_disk.disk == "disk/by-id/wwn-0x5000c500a1b2c3d4"),
    ),
    Case("`<primary-disk>`", bare(SRC, IFACE), Refused("installation", "no <primary-disk> found")),
    Case(
        "`iscsi:` disks (RFC 4173)",
        bare(
            "<primary-disk>iscsi:192.0.2.9::3260:1:iqn.2004-01.com.example:disk</primary-disk>",
            SRC,
            IFACE,
        ),
        Refused(
            "installation/primary-disk",
            "disk 'iscsi:192.0.2.9::3260:1:iqn.2004-01.com.example:disk' is an iSCSI target",
        ),
    ),
    Case(
        "`iscsi:` disks (RFC 4173)",
        fresh("<guest-disk>iscsi:192.0.2.9::3260:2:iqn.2004-01.com.example:disk</guest-disk>"),
        Refused(
            "installation/guest-disk",
            "disk 'iscsi:192.0.2.9::3260:2:iqn.2004-01.com.example:disk' is an iSCSI target",
        ),
    ),
    Case(
        "`iscsi:` disks (RFC 4173)",
        bare(
            "<existing-installation>iscsi:192.0.2.9::3260:1:iqn.x:d</existing-installation>",
            SRC,
            root='<installation mode="upgrade">',
        ),
        Refused(
            "installation/existing-installation",
            "disk 'iscsi:192.0.2.9::3260:1:iqn.x:d' is an iSCSI target",
        ),
    ),
    Case(
        '`<primary-disk guest-storage="...">`',
        bare('<primary-disk guest-storage="false">sda</primary-disk>', SRC, IFACE),
        Honoured(lambda af: af.primary_disk.guest_storage is False),
    ),
    Case(
        '`<primary-disk gueststorage="...">`',
        bare('<primary-disk gueststorage="no">sda</primary-disk>', SRC, IFACE),
        Honoured(lambda af: af.primary_disk.guest_storage is False),
    ),
    Case(
        '`<primary-disk gueststorage="...">`',
        bare('<primary-disk gueststorage="YES">sda</primary-disk>', SRC, IFACE),
        Honoured(lambda af: af.primary_disk.guest_storage is True),
    ),
    Case(
        '`<primary-disk gueststorage="...">`',
        bare('<primary-disk guest-storage="no" gueststorage="yes">sda</primary-disk>', SRC, IFACE),
        Honoured(
            lambda af: af.primary_disk.guest_storage is False,
            warning='guest-storage="no" and gueststorage="yes" are two spellings',
        ),
    ),
    Case(
        '`<primary-disk gueststorage="...">`',
        bare('<primary-disk gueststorage="maybe">sda</primary-disk>', SRC, IFACE),
        Refused("installation/primary-disk", "gueststorage=\"maybe\" is 'maybe', not a boolean"),
    ),
    Case(
        '`<primary-disk sr-at-end="...">`',
        bare('<primary-disk sr-at-end="true">sda</primary-disk>', SRC, IFACE),
        Honoured(lambda af: af.primary_disk.sr_at_end is True),
    ),
    Case(
        '`<primary-disk sr-at-end="...">`',
        bare('<primary-disk sr-at-end="false">sda</primary-disk>', SRC, IFACE),
        Refused("installation/primary-disk", 'sr-at-end="false" is not supported'),
    ),
    Case(
        '`<primary-disk preserve-first-partition="...">`',
        bare('<primary-disk preserve-first-partition="no">sda</primary-disk>', SRC, IFACE),
        Honoured(
            lambda af: af.primary_disk.preserve_first_partition is PreserveFirstPartition.FALSE
        ),
    ),
    Case(
        '`<primary-disk preserve-first-partition="...">`',
        bare('<primary-disk preserve-first-partition="sometimes">sda</primary-disk>', SRC, IFACE),
        Refused("installation/primary-disk", 'preserve-first-partition="sometimes" is not allowed'),
    ),
    Case(
        "`<guest-disk>`",
        fresh("<guest-disks><guest-disk>sdb</guest-disk></guest-disks>"),
        Honoured(lambda af: af.guest_disks == ("sdb",)),
    ),
    Case(
        "`<guest-disk>`",
        fresh("<guest-disk>sda</guest-disk>"),
        Refused("installation/guest-disk", "guest disk 'sda' is the primary disk"),
    ),
    Case(
        '`sr-type="..."`, `srtype="..."`',
        fresh(root='<installation srtype="lvm">'),
        Honoured(lambda af: af.sr_type is SrType.LVM),
    ),
    Case(
        '`sr-type="..."`, `srtype="..."`',
        fresh(root='<installation sr-type="ext">'),
        Honoured(lambda af: af.sr_type is SrType.EXT),
    ),
    Case(
        '`sr-type="..."`, `srtype="..."`',
        fresh(root='<installation sr-type="largeblock">'),
        Honoured(lambda af: af.sr_type is SrType.LARGEBLOCK),
    ),
    Case('`sr-type="..."`, `srtype="..."`', fresh(), Honoured(lambda af: af.sr_type is None)),
    Case(
        '`sr-type="..."`, `srtype="..."`',
        fresh(root='<installation sr-type="zfs">'),
        Refused("installation", 'sr-type="zfs" is not allowed: allowed ext|lvm|largeblock'),
    ),
    Case(
        '`<admin-interface name="...">`',
        fresh(),
        Honoured(lambda af: (iface(af).name, iface(af).hwaddr) == ("eth0", None)),
    ),
    Case(
        '`<admin-interface hwaddr="...">`',
        bare(DISK, SRC, '<admin-interface hwaddr="00:16:3E:12:34:56" proto="dhcp"/>'),
        Honoured(lambda af: (iface(af).name, iface(af).hwaddr) == (None, "00:16:3E:12:34:56")),
    ),
    Case(
        '`<admin-interface name="..." hwaddr="...">`',
        bare(DISK, SRC, '<admin-interface name="eth1" hwaddr="00:16:3e:12:34:56" proto="dhcp"/>'),
        Honoured(lambda af: (iface(af).name, iface(af).hwaddr) == ("eth1", "00:16:3e:12:34:56")),
    ),
    Case(
        '`<admin-interface name="..." hwaddr="...">`',
        bare(DISK, SRC, '<admin-interface proto="dhcp"/>'),
        Refused("installation/admin-interface", 'found neither name="..." nor hwaddr="..."'),
    ),
    Case(
        '`<admin-interface proto="...">`',
        bare(
            DISK,
            SRC,
            '<admin-interface name="eth0" proto="static"><ip>192.0.2.5</ip>'
            "<subnet-mask>255.255.255.0</subnet-mask><gateway>192.0.2.1</gateway>"
            "</admin-interface>",
        ),
        Honoured(
            lambda af: (
                (iface(af).proto, iface(af).ipaddr, iface(af).subnet, iface(af).gateway)
                == (Proto.STATIC, "192.0.2.5", "255.255.255.0", "192.0.2.1")
            )
        ),
    ),
    Case(
        '`<admin-interface proto="...">`',
        bare(DISK, SRC, '<admin-interface name="eth0" proto="bootp"/>'),
        Refused("installation/admin-interface", 'proto="bootp" is not allowed'),
    ),
    Case(
        '`<admin-interface protov6="...">`',
        bare(DISK, SRC, '<admin-interface name="eth0" protov6="autoconf"/>'),
        Honoured(lambda af: (iface(af).proto, iface(af).protov6) == (Proto.NONE, ProtoV6.AUTOCONF)),
    ),
    Case(
        '`<admin-interface vlan="...">`',
        bare(DISK, SRC, '<admin-interface name="eth0" proto="dhcp" vlan="42"/>'),
        Honoured(lambda af: iface(af).vlan == 42),
    ),
    Case(
        '`<admin-interface vlan="...">`',
        bare(DISK, SRC, '<admin-interface name="eth0" proto="dhcp" vlan="4095"/>'),
        Refused("installation/admin-interface", 'vlan="4095" is out of range'),
    ),
    Case(
        "`<ipaddr>` (`<ip>`), `<subnet>` (`<subnet-mask>`), `<gateway>`",
        bare(
            DISK,
            SRC,
            '<admin-interface name="eth0" proto="static"><ipaddr>192.0.2.5</ipaddr>'
            "<subnet>255.255.255.0</subnet></admin-interface>",
        ),
        Refused("installation/admin-interface", 'proto="static" needs <gateway>'),
    ),
    Case(
        "`<ipv6>`, `<gatewayv6>`",
        bare(
            DISK,
            SRC,
            '<admin-interface name="eth0" protov6="static">'
            "<ipv6>2001:db8::10/64</ipv6><gatewayv6>2001:db8::1</gatewayv6>"
            "</admin-interface>",
        ),
        Honoured(
            lambda af: (iface(af).ipv6, iface(af).gatewayv6) == ("2001:db8::10/64", "2001:db8::1")
        ),
    ),
    Case(
        '`<root-password type="plaintext">`',
        fresh("<root-password>s3cret-pw</root-password>"),
        Honoured(
            lambda af: sha512_crypt.verify("s3cret-pw", af.root_password_hash),
            warning="plaintext root password accepted and hashed",
        ),
    ),
    Case(
        '`<root-password type="hash">`',
        fresh(f'<root-password type="hash">{HASH}</root-password>'),
        Honoured(lambda af: af.root_password_hash == HASH),
    ),
    Case(
        '`<root-password type="hash">`',
        fresh('<root-password type="hash">!!</root-password>'),
        Honoured(lambda af: af.root_password_hash is None),
    ),
    Case(
        '`<root-password type="hash">`',
        fresh('<root-password type="hash">not-a-hash</root-password>'),
        Refused("installation/root-password", 'type="hash" needs a crypt(3) hash'),
    ),
    Case(
        "`<name-server>` (`<nameserver>`)",
        fresh("<name-server>192.0.2.53</name-server>", "<nameserver>2001:db8::53</nameserver>"),
        Honoured(lambda af: af.name_servers == ("192.0.2.53", "2001:db8::53")),
    ),
    Case(
        "`<hostname>`",
        fresh("<hostname>xen-01.example.com</hostname>"),
        Honoured(lambda af: af.hostname == "xen-01.example.com"),
    ),
    Case(
        "`<timezone>`",
        fresh("<timezone>Europe/Paris</timezone>"),
        Honoured(lambda af: af.timezone == "Europe/Paris"),
    ),
    Case(
        "`<keymap>`",
        fresh("<keymap>de-latin1</keymap>"),
        Honoured(lambda af: af.keymap == "de-latin1"),
    ),
    Case(
        '`<ntp source="...">`',
        fresh('<ntp source="none"/>'),
        Honoured(lambda af: af.ntp.source is NtpSource.NONE),
    ),
    Case(
        '`<ntp source="...">`',
        fresh('<ntp mode="manual"/>', "<ntp-server>192.0.2.1</ntp-server>"),
        Refused("installation/ntp", '<ntp> needs source="dhcp|default|manual|none"'),
    ),
    Case(
        '`<ntp source="...">`',
        fresh('<ntp source="dhcp"/>', '<ntp source="none"/>'),
        Refused("installation/ntp", "<ntp> is given again (first on line 5)"),
    ),
    Case(
        '`<ntp source="...">`',
        fresh('<ntp source="dhcp"/>', "<ntp-server>192.0.2.1</ntp-server>"),
        Refused("installation/ntp", 'source="dhcp" does not use the 1 <ntp-server> given'),
    ),
    Case(
        "`<ntp-server>`, `<ntp-servers>`",
        fresh(
            "<ntp-servers>ntp1.example.com</ntp-servers>", "<ntp-server>192.0.2.123</ntp-server>"
        ),
        Honoured(
            lambda af: (
                (af.ntp.source, af.ntp.servers)
                == (NtpSource.MANUAL, ("ntp1.example.com", "192.0.2.123"))
            )
        ),
    ),
    Case(
        "`<ntp-server>`, `<ntp-servers>`",
        fresh('<ntp source="manual"/>', "<ntp-servers>pool.example.org</ntp-servers>"),
        Honoured(lambda af: af.ntp.servers == ("pool.example.org",)),
    ),
    Case(
        '`<service name="..." state="...">`',
        fresh('<service name="sshd" state="disabled"/>'),
        Honoured(
            lambda af: [(s.name, s.state) for s in af.services] == [("sshd", ServiceState.DISABLED)]
        ),
    ),
    Case(
        '`<service name="..." state="...">`',
        fresh('<service name="sshd" state="enabled"/>', '<service name="sshd" state="disabled"/>'),
        Refused("installation/service", 'service name="sshd" is given again (first on line 5)'),
    ),
    # -- upgrade and restore -----------------------------------------------------------------
    Case(
        "`<existing-installation>`",
        upgrade(),
        Honoured(lambda af: af.existing_installation == "sda"),
    ),
    Case(
        "`<existing-installation>`",
        bare(SRC, root='<installation mode="upgrade">'),
        Refused("installation", "no <existing-installation> found"),
    ),
    Case(
        "`<primary-disk>` in an upgrade",
        upgrade(DISK),
        Warned("installation/primary-disk", "<primary-disk> does nothing in mode upgrade"),
    ),
    Case(
        '`sr-type="..."` in an upgrade',
        upgrade(root='<installation mode="upgrade" srtype="lvm">'),
        Warned("installation", 'srtype="lvm" does nothing in mode upgrade'),
    ),
    Case(
        "`<backup-disk>`",
        restore("<backup-disk>disk/by-id/wwn-0x5000c500a1b2c3d4</backup-disk>"),
        Honoured(lambda af: af.backup_disk == "disk/by-id/wwn-0x5000c500a1b2c3d4"),
    ),
    # -- what older XCP-ng releases read and 8.3 no longer does -------------------------------
    Case(
        "`<time-config-method>`",
        fresh("<time-config-method>ntp</time-config-method>"),
        Warned("installation/time-config-method", "unknown element <time-config-method>"),
    ),
    Case(
        "`<initial-partitions>`",
        fresh(
            '<initial-partitions><partition number="1" size="100" id="de"/></initial-partitions>'
        ),
        Warned("installation/initial-partitions", "unknown element <initial-partitions>"),
    ),
    Case(
        "`<zap-utility-partitions>`",
        fresh("<zap-utility-partitions/>"),
        Warned("installation/zap-utility-partitions", "unknown element <zap-utility-partitions>"),
    ),
]


def _parse(xml: str) -> Parsed:
    return parse_answerfile(xml, "af.xml")


@pytest.mark.parametrize("case", CASES, ids=[f"{c.row} #{i}" for i, c in enumerate(CASES)])
def test_case(case: Case) -> None:
    outcome = case.outcome
    if isinstance(outcome, Refused):
        with pytest.raises(AnswerFileError) as caught:
            _parse(case.xml)
        found = [(p.path, p.message) for p in caught.value.problems]
        assert any(
            path == outcome.path and message.startswith(outcome.message) for path, message in found
        ), found
        return
    parsed = _parse(case.xml)
    warnings = [(w.path, w.message) for w in parsed.warnings]
    if isinstance(outcome, Warned):
        assert any(
            path == outcome.path and message.startswith(outcome.message)
            for path, message in warnings
        ), warnings
        return
    assert outcome.check(parsed.answers), parsed.answers
    if outcome.warning is None:
        assert warnings == []
    else:
        assert any(outcome.warning in message for _path, message in warnings), warnings


def _doc_rows() -> list[str]:
    """The first cell of every row of the parity table in docs/answerfile.md."""
    text = DOC.read_text()
    section = text.split("## XCP-ng 8.3 parity", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ")]
    return [re.split(r" \| ", row[2:], maxsplit=1)[0].strip() for row in rows[1:]]  # no header


def test_every_row_of_the_parity_table_has_a_case_and_every_case_a_row() -> None:
    rows = _doc_rows()
    assert len(rows) == len(set(rows)), "a row of the parity table is there twice"
    tested = {case.row for case in CASES}
    assert sorted(set(rows) - tested - set(ELSEWHERE)) == []
    assert sorted(tested - set(rows)) == []
    root = DOC.parents[1]
    assert sorted(row for row in ELSEWHERE if row not in rows) == []
    assert all((root / path).is_file() for path in ELSEWHERE.values())
