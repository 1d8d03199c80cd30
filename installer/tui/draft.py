"""The answers being built on screen, and how they become an :class:`AnswerFile`.

The TUI never invents rules of its own for what an answer file may say: each screen turns its
part of the draft into the model and asks ``answerfiles.validate`` (the very checks an answer file
gets), keeping only the problems about the elements that screen edits. Only what no answer file
carries (a password typed twice) is checked here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from answerfiles.errors import Problem
from answerfiles.model import (
    AdminInterface,
    AnswerFile,
    Mode,
    Ntp,
    NtpSource,
    PrimaryDisk,
    Proto,
    Source,
    SourceType,
    SrType,
)
from answerfiles.password import hash_password
from answerfiles.validate import validate_answers

MIN_PASSWORD = 6


@dataclass
class Draft:
    """Mutable while the admin moves between screens; frozen into the model at the end."""

    keymap: str = "us"
    mode: Mode = Mode.FRESH
    primary_disk: str | None = None
    guest_disks: list[str] = field(default_factory=list)
    sr_type: SrType = SrType.EXT
    source_type: SourceType = SourceType.URL
    source_url: str = ""
    root_password_hash: str | None = None
    nic: str | None = None
    proto: Proto = Proto.DHCP
    ipaddr: str = ""
    subnet: str = ""
    gateway: str = ""
    vlan: str = ""
    hostname: str = "localhost.localdomain"
    name_servers: list[str] = field(default_factory=list)
    timezone: str = "Etc/UTC"
    ntp_source: NtpSource = NtpSource.DEFAULT
    ntp_servers: list[str] = field(default_factory=list)

    def to_answers(self) -> AnswerFile:
        static = self.proto is Proto.STATIC
        vlan = int(self.vlan) if self.vlan.strip().isdigit() else None
        iface = AdminInterface(
            name=self.nic,
            proto=self.proto,
            vlan=vlan,
            ipaddr=self.ipaddr.strip() or None if static else None,
            subnet=self.subnet.strip() or None if static else None,
            gateway=self.gateway.strip() or None if static else None,
        )
        source = Source(self.source_type, self.source_url.strip())
        upgrading = self.mode is Mode.UPGRADE
        return AnswerFile(
            mode=self.mode,
            sr_type=self.sr_type,
            sources=(source,),
            primary_disk=None if upgrading or not self.primary_disk
            else PrimaryDisk(self.primary_disk),
            existing_installation=self.primary_disk if upgrading else None,
            guest_disks=tuple(self.guest_disks),
            admin_interface=iface,
            root_password_hash=self.root_password_hash,
            name_servers=tuple(self.name_servers),
            hostname=self.hostname.strip(),
            timezone=self.timezone,
            keymap=self.keymap,
            ntp=Ntp(self.ntp_source, tuple(self.ntp_servers)
                    if self.ntp_source is NtpSource.MANUAL else ()),
        )

    def problems(self, *elements: str) -> list[str]:
        """Errors the answer-file rules find in the given elements, as sentences for a screen."""
        found: list[Problem] = validate_answers(self.to_answers())
        return [
            p.message
            for p in found
            if p.is_error and any(p.path.split("/")[1:2] == [e] for e in elements)
        ]

    def set_password(self, first: str, second: str) -> list[str]:
        """Hash the password at once so the plaintext lives only in the two entry widgets."""
        if first != second:
            return ["the two passwords differ: type the same password twice"]
        if len(first) < MIN_PASSWORD:
            return [f"the password has {len(first)} characters: at least {MIN_PASSWORD} needed"]
        self.root_password_hash = hash_password(first)
        return []
