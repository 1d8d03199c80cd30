"""The model back to answer-file XML that XCP-ng 8.3's installer reads the same way we do.

Everything is written explicitly (mode, NTP source, protocol) so no reader has to infer a default
(the SR type alone stays absent when XCP-ng is to choose it from the disks),
and our extensions go under the ``xp`` prefix, invisible to XCP-ng. ``<ui-confirmation-prompt>``
is written only when true: XCP-ng reads any text there, "false" included, as true.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from answerfiles import namespace
from answerfiles.model import (
    AdminInterface,
    AnswerFile,
    Mode,
    PrimaryDisk,
    Proto,
    ProtoV6,
    Provisioning,
    Source,
)


def write_answerfile(answers: AnswerFile) -> str:
    """``answers`` as an XML document (UTF-8 text with declaration)."""
    ET.register_namespace(namespace.PREFIX, namespace.NS)
    if answers.mode is Mode.RESTORE:
        root = ET.Element("restore")
    else:
        root = ET.Element("installation", {"mode": str(answers.mode)})
        if answers.mode is not Mode.UPGRADE and answers.sr_type is not None:
            # Absent is XCP-ng's automatic choice (largeblock on 4Kn disks): kept absent.
            root.set("sr-type", str(answers.sr_type))
        _gpg_attrs(root, answers.gpgcheck, answers.repo_gpgcheck)
    _common(root, answers)
    if answers.mode is Mode.RESTORE:
        _text(root, "backup-disk", answers.backup_disk)
    else:
        _installation(root, answers)
    if answers.mode is Mode.UPGRADE:
        _text(root, "existing-installation", answers.existing_installation)
    if answers.mode in (Mode.FRESH, Mode.REINSTALL):
        _fresh(root, answers)
    _provisioning(root, answers.provisioning)
    ET.indent(root, "    ")
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, "unicode") + "\n"


def _common(root: ET.Element, answers: AnswerFile) -> None:
    _sources(root, "driver-source", answers.driver_sources)
    for script in answers.scripts:
        _text(root, "script", script.location, stage=str(script.stage), type=str(script.type))
    if answers.ui_confirmation_prompt:
        _text(root, "ui-confirmation-prompt", "true")


def _installation(root: ET.Element, answers: AnswerFile) -> None:
    _sources(root, "source", answers.sources)
    loader = answers.bootloader
    _text(root, "bootloader", "grub2", location=str(loader.location),
          **{"write-boot-entry": _bool(loader.write_boot_entry)})
    _text(root, "network-backend", str(answers.network_backend))


def _fresh(root: ET.Element, answers: AnswerFile) -> None:
    if answers.raid is not None:
        raid = ET.SubElement(root, "raid", {"device": answers.raid.device})
        for disk in answers.raid.disks:
            _text(raid, "disk", disk)
    if answers.primary_disk is not None:
        _primary_disk(root, answers.primary_disk)
    for disk in answers.guest_disks:
        _text(root, "guest-disk", disk)
    if answers.admin_interface is not None:
        _interface(root, answers.admin_interface)
    if answers.root_password_hash is not None:
        _text(root, "root-password", answers.root_password_hash, type="hash")
    for server in answers.name_servers:
        _text(root, "name-server", server)
    _text(root, "hostname", answers.hostname)
    _text(root, "timezone", answers.timezone)
    _text(root, "keymap", answers.keymap)
    ET.SubElement(root, "ntp", {"source": str(answers.ntp.source)})
    for server in answers.ntp.servers:
        _text(root, "ntp-server", server)
    for service in answers.services:
        ET.SubElement(root, "service", {"name": service.name, "state": str(service.state)})


def _primary_disk(root: ET.Element, disk: PrimaryDisk) -> None:
    _text(root, "primary-disk", disk.disk, **{
        "guest-storage": _bool(disk.guest_storage),
        "sr-at-end": _bool(disk.sr_at_end),
        "preserve-first-partition": str(disk.preserve_first_partition),
    })


def _interface(root: ET.Element, iface: AdminInterface) -> None:
    attrs = {"name": iface.name, "hwaddr": iface.hwaddr,
             "proto": None if iface.proto is Proto.NONE else str(iface.proto),
             "protov6": None if iface.protov6 is ProtoV6.NONE else str(iface.protov6),
             "vlan": None if iface.vlan is None else str(iface.vlan)}
    node = ET.SubElement(root, "admin-interface", {k: v for k, v in attrs.items() if v is not None})
    if iface.proto is Proto.STATIC:
        _text(node, "ipaddr", iface.ipaddr)
        _text(node, "subnet", iface.subnet)
        _text(node, "gateway", iface.gateway)
    if iface.protov6 is ProtoV6.STATIC:
        _text(node, "ipv6", iface.ipv6)
        _text(node, "gatewayv6", iface.gatewayv6)


def _provisioning(root: ET.Element, prov: Provisioning) -> None:
    if prov == Provisioning():
        return
    q = namespace.qualified
    node = ET.SubElement(root, q(namespace.PROVISIONING))
    _text(node, q(namespace.SERVER_URL), prov.server_url)
    _text(node, q(namespace.TOKEN), prov.token)
    if prov.pool is not None:
        pool = _text(node, q(namespace.POOL), prov.pool)
        if prov.pool_force:
            pool.set(namespace.POOL_FORCE, "true")
    rule = prov.disk_rule
    if rule is not None:
        attrs = {
            namespace.DISK_RULE_BY_ID: rule.by_id,
            namespace.DISK_RULE_SERIAL: rule.serial,
            namespace.DISK_RULE_WWN: rule.wwn,
            namespace.DISK_RULE_MIN_SIZE: _optional(rule.min_size_gib),
            namespace.DISK_RULE_MAX_SIZE: _optional(rule.max_size_gib),
            namespace.DISK_RULE_SMALLEST: "true" if rule.smallest else None,
        }
        ET.SubElement(node, q(namespace.DISK_RULE),
                      {k: v for k, v in attrs.items() if v is not None})


def _sources(root: ET.Element, tag: str, sources: tuple[Source, ...]) -> None:
    for source in sources:
        node = _text(root, tag, source.location, type=str(source.type))
        _gpg_attrs(node, source.gpgcheck, source.repo_gpgcheck)


def _gpg_attrs(node: ET.Element | None, gpgcheck: bool | None, repo: bool | None) -> None:
    """Written only when set: an unwritten attribute means "the installer's default", and
    writing it out would turn that into an explicit demand for a signature."""
    if node is None:
        return
    for name, value in (("gpgcheck", gpgcheck), ("repo-gpgcheck", repo)):
        if value is not None:
            node.set(name, _bool(value))


def _text(parent: ET.Element, tag: str, text: str | None, **attrs: str) -> ET.Element | None:
    """A child holding ``text``; nothing at all when ``text`` is None (the element is optional)."""
    if text is None:
        return None
    node = ET.SubElement(parent, tag, attrs)
    node.text = text
    return node


def _bool(value: bool) -> str:
    return "true" if value else "false"


def _optional(value: int | None) -> str | None:
    return None if value is None else str(value)
