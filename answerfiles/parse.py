"""XCP-ng 8.3 answer-file XML to the model, defaults and old spellings applied as XCP-ng does.

Reading follows XCP-ng's rules (elements anywhere below the root, first one wins, booleans
``yes``/``true`` in any case) but reports what XCP-ng silently ignores or misreads: unknown
elements, repeated single elements, elements that do nothing in the chosen mode, and values that
are not booleans at all. Semantic checks live in ``answerfiles.validate``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TypeVar

from answerfiles import namespace, unsupported
from answerfiles.errors import AnswerFileError, Problem
from answerfiles.locations import Locations
from answerfiles.model import (
    AdminInterface,
    AnswerFile,
    Bootloader,
    BootloaderLocation,
    DiskRule,
    Mode,
    NetworkBackend,
    Ntp,
    NtpSource,
    PreserveFirstPartition,
    PrimaryDisk,
    Proto,
    ProtoV6,
    Provisioning,
    Raid,
    Script,
    ScriptStage,
    Service,
    ServiceState,
    Source,
    SourceType,
    SrType,
)
from answerfiles.password import hash_password
from answerfiles.validate import validate_answers
from answerfiles.xmltree import Node, parse_xml

_COMMON = {"driver-source", "script", "post-install-script", "install-failed-script",
           "ui-confirmation-prompt", *unsupported.ELEMENTS}
_INSTALL = {"source", "bootloader", "network-backend"}
_FRESH = {"primary-disk", "guest-disk", "raid", "disk", "admin-interface", "ipaddr", "ip",
          "subnet", "subnet-mask", "gateway", "ipv6", "gatewayv6", "root-password",
          "name-server", "nameserver", "hostname", "timezone", "keymap", "ntp", "ntp-server",
          "ntp-servers", "service"}
_UPGRADE = {"existing-installation"}
_RESTORE = {"backup-disk"}
_KNOWN = _COMMON | _INSTALL | _FRESH | _UPGRADE | _RESTORE | {
    namespace.qualified(name) for name in namespace.ELEMENTS
}
# Elements read inside another one, not from the whole file.
_NESTED = {"disk": "raid", "ipaddr": "admin-interface", "ip": "admin-interface",
           "subnet": "admin-interface", "subnet-mask": "admin-interface",
           "gateway": "admin-interface", "ipv6": "admin-interface",
           "gatewayv6": "admin-interface"}

E = TypeVar("E", bound=StrEnum)

# A type="hash" root password of "!!" leaves root without a password, as in XCP-ng's shadow.
LOCKED = "!!"
_TRUE = {"yes", "true"}
_FALSE = {"no", "false"}


@dataclass(frozen=True)
class Parsed:
    """A usable answer file and the warnings found on the way (never holding a password)."""

    answers: AnswerFile
    warnings: tuple[Problem, ...]


def parse_answerfile(data: str | bytes, source: str = "answerfile.xml") -> Parsed:
    """Parse and validate ``data``; raises ``AnswerFileError`` listing every error at once."""
    root = parse_xml(data, source)
    reader = _Reader(root, source)
    answers = reader.read()
    # A value that failed to read was replaced by its default: checks built on it would mislead.
    failed = {(p.line, p.path) for p in reader.problems if p.is_error} - {(root.line, root.path)}
    semantic = [p for p in validate_answers(answers, reader.where)
                if (p.line, p.path) not in failed]
    problems = sorted([*reader.problems, *semantic], key=lambda p: p.line)
    errors = [p for p in problems if p.is_error]
    if errors:
        raise AnswerFileError(errors)
    return Parsed(answers, tuple(problems))


class _Reader:
    """One pass over the tree, filling the model and collecting grammar problems."""

    def __init__(self, root: Node, source: str) -> None:
        self.root = root
        self.source = source
        self.problems: list[Problem] = []
        self.where = Locations(source, root.path, root.line)
        self.mode = self._mode()
        self._all = root.iter()
        # Elements by tag, in document order: a file is asked for some 30 tags, and a scan of
        # every element for each was a fifth of the parse.
        self._by_tag: dict[str, list[Node]] = {}
        for node in self._all:
            self._by_tag.setdefault(node.tag, []).append(node)

    # -- reporting -------------------------------------------------------------------------

    def error(self, node: Node, message: str) -> None:
        self.problems.append(Problem(self.source, node.line, node.path, message))

    def warn(self, node: Node, message: str) -> None:
        self.problems.append(Problem(self.source, node.line, node.path, message, "warning"))

    # -- finding elements ------------------------------------------------------------------

    def nodes(self, *tags: str, within: Node | None = None) -> list[Node]:
        """The elements of ``tags`` in document order (a shared list: not to be modified)."""
        if within is not None:
            return [n for n in within.iter() if n.tag in tags]
        if len(tags) == 1:
            return self._by_tag.get(tags[0], [])
        return [n for n in self._all if n.tag in tags]

    def first(self, *tags: str, key: str = "", within: Node | None = None) -> Node | None:
        """The first of ``tags`` (XCP-ng reads only that one); later ones draw a warning."""
        found = self.nodes(*tags, within=within)
        if not found:
            return None
        for extra in found[1:]:
            self.warn(extra, f"repeated <{_name(extra)}> is ignored: the one on line "
                             f"{found[0].line} applies")
        self.where.note(key or tags[0], found[0].line, found[0].path)
        return found[0]

    def kept(self, key: str, items: list[object], node: Node) -> None:
        """Where the model's next ``items`` entry came from (some elements are skipped)."""
        self.where.note(f"{key}#{len(items)}", node.line, node.path)

    def repeated(self, *tags: str, key: str = "") -> list[Node]:
        found = self.nodes(*tags)
        for i, node in enumerate(found):
            self.where.note(f"{key or tags[0]}#{i}", node.line, node.path)
        return found

    def text(self, *tags: str, key: str = "", within: Node | None = None) -> str | None:
        node = self.first(*tags, key=key, within=within)
        return None if node is None else node.text

    # -- typed attributes ------------------------------------------------------------------

    def attr(self, node: Node, *names: str) -> str | None:
        for name in names:
            if name in node.attrs:
                return node.attrs[name].strip()
        return None

    def boolean(self, node: Node, value: str | None, what: str, default: bool) -> bool:
        if value is None:
            return default
        lowered = value.lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        self.error(node, f"{what} is {value!r}, not a boolean: allowed yes|no|true|false")
        return default

    def bool_attr(self, node: Node, name: str, default: bool, *, also: tuple[str, ...] = ()
                  ) -> bool:
        """``also``: other spellings XCP-ng reads; the first one given wins, as there."""
        given = [n for n in (name, *also) if n in node.attrs]
        values = [self.boolean(node, self.attr(node, n), f'{n}="{node.attrs[n]}"', default)
                  for n in given]
        if len(set(values)) > 1:
            self.warn(node, f'{given[0]}="{node.attrs[given[0]]}" and {given[1]}='
                            f'"{node.attrs[given[1]]}" are two spellings of one attribute and '
                            f"disagree: {given[0]} applies, as in XCP-ng; remove the other")
        return values[0] if values else default

    def choice(self, node: Node, names: tuple[str, ...], enum: type[E], default: E,
                           aliases: dict[str, E] | None = None) -> E:
        value = self.attr(node, *names)
        if value is None:
            return default
        lowered = value.lower()
        if aliases and lowered in aliases:
            return aliases[lowered]
        try:
            return enum(lowered)
        except ValueError:
            allowed = "|".join([*(e.value for e in enum), *(aliases or {})])
            name = next(n for n in names if n in node.attrs)
            self.error(node, f'{name}="{value}" is not allowed: allowed {allowed}')
            return default

    def integer(self, node: Node, name: str) -> int | None:
        value = self.attr(node, name)
        if value is None or value == "":
            return None
        try:
            return int(value, 10)
        except ValueError:
            self.error(node, f'{name}="{value}" is not a whole number')
            return None

    # -- the file --------------------------------------------------------------------------

    def _mode(self) -> Mode:
        root = self.root
        if root.tag == "restore":
            return Mode.RESTORE
        if root.tag not in ("installation", "upgrade"):
            raise AnswerFileError([Problem(
                self.source, root.line, root.path,
                f"root element <{_name(root)}> is not an answer file: allowed <installation>, "
                "<upgrade> (the same as <installation>) or <restore>")])
        mode = self.attr(root, "mode")
        if mode is None:
            if root.tag == "upgrade":
                self.warn(root, 'root <upgrade> without mode="..." is a FRESH install, as in '
                                'XCP-ng, which erases the primary disk; write mode="upgrade" '
                                "if you meant an upgrade")
            return Mode.FRESH
        if mode.lower() not in ("fresh", "reinstall", "upgrade"):
            # Nothing else can be judged without knowing the mode.
            raise AnswerFileError([Problem(
                self.source, root.line, root.path,
                f'mode="{mode}" is not allowed: allowed fresh|reinstall|upgrade')])
        return Mode(mode.lower())

    def applies(self) -> set[str]:
        tags = set(_COMMON)
        if self.mode is not Mode.RESTORE:
            tags |= _INSTALL
        if self.mode in (Mode.FRESH, Mode.REINSTALL):
            tags |= _FRESH
        tags |= _UPGRADE if self.mode is Mode.UPGRADE else set()
        tags |= _RESTORE if self.mode is Mode.RESTORE else set()
        return tags

    def read(self) -> AnswerFile:
        # The model is built once from all its fields: a frozen dataclass copied per stage
        # (dataclasses.replace) cost a fifth of the reading time.
        self._report_ignored()
        self._refuse_unsupported_elements()
        fields: dict[str, object] = {
            "mode": self.mode,
            "driver_sources": self._sources("driver-source"),
            "scripts": self._scripts(),
            "ui_confirmation_prompt": self._confirmation(),
            "provisioning": self._provisioning(),
        }
        if self.mode is Mode.RESTORE:
            return AnswerFile(**fields, backup_disk=self.text("backup-disk"))
        fields.update(
            **self._gpg_attrs(self.root),
            sources=self._sources("source"),
            bootloader=self._bootloader(),
            network_backend=self._network_backend(),
        )
        if self.mode is Mode.UPGRADE:
            self._report_sr_type_ignored()
            return AnswerFile(**fields, existing_installation=self.text("existing-installation"))
        return AnswerFile(**fields, **self._fresh())

    def _report_ignored(self) -> None:
        applies = self.applies()
        for node in self._all:
            if node.tag in _KNOWN:
                if node.tag not in applies and not node.tag.startswith("{"):
                    self.warn(node, f"<{_name(node)}> does nothing in mode {self.mode} and is "
                                    "ignored")
                elif node.tag in _NESTED and _NESTED[node.tag] not in node.path.split("/")[:-1]:
                    self.warn(node, f"<{_name(node)}> outside <{_NESTED[node.tag]}> is ignored")
                continue
            if not any(d.tag in _KNOWN for d in node.iter()):
                self.warn(node, f"unknown element <{_name(node)}> is ignored")

    def _refuse_unsupported_elements(self) -> None:
        for tag, reason in unsupported.ELEMENTS.items():
            for node in self.nodes(tag):
                self.error(node, reason)

    def _report_sr_type_ignored(self) -> None:
        for name in ("sr-type", "srtype"):
            if name in self.root.attrs:
                self.warn(self.root, f'{name}="{self.root.attrs[name]}" does nothing in mode '
                                     f"{self.mode} and is ignored: an upgrade keeps the local SR")

    def _fresh(self) -> dict[str, object]:
        admin = self._admin_interface()
        ntp_servers = tuple(n.text for n in self.repeated("ntp-server", "ntp-servers",
                                                          key="ntp-server"))
        return {
            "sr_type": self._sr_type(),
            "primary_disk": self._primary_disk(),
            "guest_disks": tuple(n.text for n in self.repeated("guest-disk")),
            "raid": self._raid(),
            "admin_interface": admin,
            "root_password_hash": self._root_password(),
            "name_servers": tuple(n.text for n in self.repeated("name-server", "nameserver",
                                                                key="name-server")),
            "hostname": self.text("hostname") or "localhost.localdomain",
            "timezone": self.text("timezone") or "Etc/UTC",
            "keymap": self.text("keymap") or "us",
            "ntp": Ntp(self._ntp_source(ntp_servers, admin), ntp_servers),
            "services": self._services(),
        }

    # -- elements --------------------------------------------------------------------------

    def _sources(self, tag: str) -> tuple[Source, ...]:
        sources: list[Source] = []
        for node in self.nodes(tag):
            if self.attr(node, "type") is None:
                self.error(node, f'<{tag}> needs type="local|url|nfs"')
                continue
            kind = self.choice(node, ("type",), SourceType, SourceType.URL)
            self.kept(tag, sources, node)
            sources.append(Source(kind, node.text, **self._gpg_attrs(node)))
        return tuple(sources)

    def _gpg_attrs(self, node: Node) -> dict[str, bool | None]:
        """``gpgcheck``/``repo-gpgcheck`` as written, None when absent: the default is the
        installer's to decide (it depends on whether it holds a site key)."""
        return {
            field: None if self.attr(node, name) is None else self.bool_attr(node, name, True)
            for field, name in (("gpgcheck", "gpgcheck"), ("repo_gpgcheck", "repo-gpgcheck"))
        }

    def _scripts(self) -> tuple[Script, ...]:
        old = {"post-install-script": ScriptStage.FILESYSTEM_POPULATED,
               "install-failed-script": ScriptStage.INSTALLATION_COMPLETE}
        scripts: list[Script] = []
        for node in self.nodes("script", *old):
            if node.tag == "script":
                if self.attr(node, "stage") is None:
                    self.error(node, '<script> needs stage="installation-start|'
                                     'filesystem-populated|installation-complete"')
                    continue
                stage = self.choice(node, ("stage",), ScriptStage, ScriptStage.INSTALLATION_START)
            else:
                stage = old[node.tag]
            kind = self.choice(node, ("type",), SourceType, SourceType.URL)
            if kind is SourceType.LOCAL:
                self.error(node, 'type="local" is not allowed for a script: allowed url|nfs')
            self.kept("script", scripts, node)
            scripts.append(Script(stage, kind, node.text))
        return tuple(scripts)

    def _confirmation(self) -> bool:
        node = self.first("ui-confirmation-prompt")
        if node is None:
            return False
        if not node.text:
            return False
        # FIX: XCP-ng takes any non-empty text, "false" included, as true.
        return self.boolean(node, node.text, "<ui-confirmation-prompt>", False)

    def _bootloader(self) -> Bootloader:
        node = self.first("bootloader")
        if node is None:
            return Bootloader()
        if node.text and node.text.lower() != "grub2":
            self.error(node, f"bootloader {node.text!r} is not available: allowed grub2")
        return Bootloader(
            self.choice(node, ("location",), BootloaderLocation, BootloaderLocation.MBR),
            self.bool_attr(node, "write-boot-entry", True),
        )

    def _network_backend(self) -> NetworkBackend:
        node = self.first("network-backend")
        if node is None:
            return NetworkBackend.OPENVSWITCH
        value = node.text.lower()
        if value == "vswitch":
            return NetworkBackend.OPENVSWITCH
        try:
            return NetworkBackend(value)
        except ValueError:
            self.error(node, f"network backend {node.text!r} is not allowed: allowed bridge|"
                             "openvswitch|vswitch")
            return NetworkBackend.OPENVSWITCH

    def _sr_type(self) -> SrType | None:
        """Absent stays None: XCP-ng's default depends on the disks' sector size."""
        if self.attr(self.root, "sr-type", "srtype") is None:
            return None
        return self.choice(self.root, ("sr-type", "srtype"), SrType, SrType.EXT)

    def _primary_disk(self) -> PrimaryDisk | None:
        node = self.first("primary-disk")
        if node is None:
            return None
        return PrimaryDisk(
            node.text,
            guest_storage=self.bool_attr(node, "guest-storage", True, also=("gueststorage",)),
            sr_at_end=self.bool_attr(node, "sr-at-end", True),
            preserve_first_partition=self.choice(
                node, ("preserve-first-partition",), PreserveFirstPartition,
                PreserveFirstPartition.IF_UTILITY,
                aliases={"yes": PreserveFirstPartition.TRUE, "no": PreserveFirstPartition.FALSE}),
        )

    def _raid(self) -> Raid | None:
        found = self.nodes("raid")
        for extra in found[1:]:  # XCP-ng builds every one; only a mirrored primary is built here
            self.error(extra, f"a second <raid> is not supported: only the one on line "
                              f"{found[0].line}, mirroring the primary disk, is built; remove "
                              "this one or its disks")
        node = found[0] if found else None
        if node is None:
            return None
        self.where.note("raid", node.line, node.path)
        disks = self.nodes("disk", within=node)
        for i, disk in enumerate(disks):
            self.where.note(f"disk#{i}", disk.line, disk.path)
        return Raid(self.attr(node, "device") or "", tuple(d.text for d in disks))

    def _admin_interface(self) -> AdminInterface | None:
        node = self.first("admin-interface")
        if node is None:
            return None
        proto = self.choice(node, ("proto",), Proto, Proto.NONE)
        protov6 = self.choice(node, ("protov6",), ProtoV6, ProtoV6.NONE)
        v4 = self._addresses(node, proto is Proto.STATIC, "proto",
                             (("ipaddr", "ip"), ("subnet", "subnet-mask"), ("gateway",)))
        v6 = self._addresses(node, protov6 is ProtoV6.STATIC, "protov6",
                             (("ipv6",), ("gatewayv6",)))
        return AdminInterface(
            name=self.attr(node, "name") or None,
            hwaddr=self.attr(node, "hwaddr") or None,
            proto=proto,
            protov6=protov6,
            vlan=self.integer(node, "vlan"),
            ipaddr=v4[0], subnet=v4[1], gateway=v4[2],
            ipv6=v6[0], gatewayv6=v6[1],
        )

    def _addresses(self, iface: Node, static: bool, attr: str,
                   spellings: tuple[tuple[str, ...], ...]) -> list[str | None]:
        """Static addresses are read only with the static protocol, as XCP-ng does."""
        values: list[str | None] = []
        for tags in spellings:
            node = self.first(*tags, within=iface)
            if node is not None and not static:
                self.warn(node, f"<{_name(node)}> is ignored: the interface's {attr} is not "
                                "static")
                node = None
            values.append(None if node is None else node.text)
        return values

    def _root_password(self) -> str | None:
        node = self.first("root-password")
        if node is None:
            return None
        kind = self.attr(node, "type") or "plaintext"
        if kind.lower() == "hash" and node.text == LOCKED:
            return None  # XCP-ng's documented way of leaving root without a password
        if kind.lower() == "hash":
            return node.text
        if kind.lower() != "plaintext":
            self.error(node, f'type="{kind}" is not allowed: allowed plaintext|hash')
            return None
        if not node.text:
            self.error(node, "the plaintext root password is empty: give a password, or a "
                             'SHA-512 crypt hash with type="hash"')
            return None
        self.warn(node, "plaintext root password accepted and hashed (SHA-512 crypt); store a "
                        'hash instead: type="hash" with the output of '
                        "`xcp-provision answerfile hash-password`")
        return hash_password(node.text)

    def _ntp_source(self, servers: tuple[str, ...], admin: AdminInterface | None) -> NtpSource:
        found = self.nodes("ntp")
        for extra in found[1:]:
            self.error(extra, f"<ntp> is given again (first on line {found[0].line}): give at "
                              "most one, as XCP-ng 8.3 also refuses more")
        node = found[0] if found else None
        if node is not None:
            self.where.note("ntp", node.line, node.path)
            if self.attr(node, "source") is None:
                self.error(node, '<ntp> needs source="dhcp|default|manual|none"')
            return self.choice(node, ("source",), NtpSource, NtpSource.DEFAULT)
        if servers:
            return NtpSource.MANUAL
        if admin is not None and admin.proto is Proto.DHCP:
            return NtpSource.DHCP
        return NtpSource.DEFAULT

    def _services(self) -> tuple[Service, ...]:
        services: list[Service] = []
        for node in self.nodes("service"):
            state = self.attr(node, "state")
            if state is None:
                self.error(node, '<service> needs state="enabled|disabled"')
                continue
            self.kept("service", services, node)
            services.append(Service(self.attr(node, "name") or "",
                                    self.choice(node, ("state",), ServiceState,
                                                ServiceState.ENABLED)))
        return tuple(services)

    def _provisioning(self) -> Provisioning:
        q = namespace.qualified
        pool = self.first(q(namespace.POOL), key="xp:pool")
        return Provisioning(
            server_url=self.text(q(namespace.SERVER_URL), key="xp:server-url"),
            token=self.text(q(namespace.TOKEN), key="xp:token"),
            pool=None if pool is None else pool.text,
            pool_force=False if pool is None else self.bool_attr(pool, namespace.POOL_FORCE,
                                                                 False),
            disk_rule=self._disk_rule(),
        )

    def _disk_rule(self) -> DiskRule | None:
        node = self.first(namespace.qualified(namespace.DISK_RULE), key="xp:disk-rule")
        if node is None:
            return None
        if self.mode not in (Mode.FRESH, Mode.REINSTALL):
            self.warn(node, f"<xp:disk-rule> does nothing in mode {self.mode} and is ignored")
            return None
        return DiskRule(
            by_id=self.attr(node, namespace.DISK_RULE_BY_ID) or None,
            serial=self.attr(node, namespace.DISK_RULE_SERIAL) or None,
            wwn=self.attr(node, namespace.DISK_RULE_WWN) or None,
            min_size_gib=self.integer(node, namespace.DISK_RULE_MIN_SIZE),
            max_size_gib=self.integer(node, namespace.DISK_RULE_MAX_SIZE),
            smallest=self.bool_attr(node, namespace.DISK_RULE_SMALLEST, False),
        )


def _name(node: Node) -> str:
    return node.path.rsplit("/", 1)[-1]
