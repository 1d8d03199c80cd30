"""Semantic checks on an answer-file model: what must be there and what values make sense.

Works on the model, not the XML, so the TUI and the server check their answers with the same
rules as a parsed file; ``Locations`` turns each finding into a line of the file when there is one.
Every message says what was found and what is allowed.
"""

from __future__ import annotations

import ipaddress
import re
import zoneinfo
from collections.abc import Callable
from dataclasses import replace
from functools import cache
from urllib.parse import urlsplit

from answerfiles.errors import Problem
from answerfiles.locations import Locations
from answerfiles.model import (
    AdminInterface,
    AnswerFile,
    Mode,
    NtpSource,
    Proto,
    ProtoV6,
    Provisioning,
    ScriptStage,
    Source,
    SourceType,
)
from answerfiles.password import WEAK_SCHEMES, crypt_scheme
from answerfiles.unsupported import disk_problem, unsupported_problems

_DISK = re.compile(r"(/dev/)?[A-Za-z0-9][A-Za-z0-9._:+@=/-]*")
_IFNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,14}")
_MAC = re.compile(r"[0-9A-Fa-f]{2}([:-])[0-9A-Fa-f]{2}(\1[0-9A-Fa-f]{2}){4}")
_LABEL = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+-]*")
_MD = re.compile(r"md[0-9]{1,3}")
_URL_SCHEMES = ("http", "https", "ftp", "file", "nfs")
_INSTALL_MODES = (Mode.FRESH, Mode.REINSTALL, Mode.UPGRADE)

# Makes a problem about the admin interface: (message, key of the element it concerns).
Reporter = Callable[..., Problem]


def validate_answers(answers: AnswerFile, where: Locations | None = None) -> list[Problem]:
    """Every semantic problem in ``answers``; ``where`` maps them to lines of the source file."""
    if where is None:
        root = "restore" if answers.mode is Mode.RESTORE else "installation"
        where = Locations("answers", root)
    problems: list[Problem] = []
    problems += _sources(answers, where)
    problems += _scripts(answers, where)
    if answers.mode in (Mode.FRESH, Mode.REINSTALL):
        problems += _fresh(answers, where)
    if answers.mode is Mode.UPGRADE:
        problems += _disk_present(answers.existing_installation, "existing-installation",
                                  "upgrades", where)
    if answers.mode is Mode.RESTORE and answers.backup_disk is not None:
        problems += _disk(answers.backup_disk, "backup-disk", where)
    problems += _provisioning(answers.provisioning, where)
    problems += unsupported_problems(answers, where)
    return problems


def _sources(answers: AnswerFile, where: Locations) -> list[Problem]:
    problems = []
    if answers.mode in _INSTALL_MODES and not answers.sources:
        problems.append(where.missing(
            f'no <source> found: mode {answers.mode} needs at least one <source type="local|url|'
            'nfs"> naming where the product comes from'))
    for tag, sources in (("source", answers.sources), ("driver-source", answers.driver_sources)):
        for i, source in enumerate(sources):
            problem = _location_problem(source)
            if problem:
                problems.append(where.problem(f"{tag}#{i}", problem))
    return problems


def _location_problem(source: Source) -> str | None:
    if source.type is SourceType.LOCAL:
        return None
    if not source.location:
        return f'type="{source.type}" needs a location as its text'
    if source.type is SourceType.URL:
        return _url_problem(source.location, _URL_SCHEMES)
    if not re.fullmatch(r"(nfs://)?[A-Za-z0-9.\[\]:_-]+:/\S*", source.location):
        return f"NFS location {source.location!r} is not of the form server:/path"
    return None


def _url_problem(url: str, schemes: tuple[str, ...]) -> str | None:
    if re.search(r"[\s<>\"]", url):
        return f"URL {url!r} contains spaces, quotes or angle brackets"
    parts = urlsplit(url)
    if parts.scheme.lower() not in schemes:
        return f"URL {url!r} has scheme {parts.scheme or 'none'!r}: allowed {'|'.join(schemes)}"
    if parts.scheme.lower() != "file" and not parts.netloc:
        return f"URL {url!r} names no server"
    return None


def _scripts(answers: AnswerFile, where: Locations) -> list[Problem]:
    problems = []
    for i, script in enumerate(answers.scripts):
        problem = _location_problem(Source(script.type, script.location))
        if script.type is SourceType.LOCAL:
            problem = 'type="local" is not allowed for a script: allowed url|nfs'
        if problem:
            problems.append(where.problem(f"script#{i}", problem))
        elif (answers.mode is Mode.RESTORE
              and script.stage is ScriptStage.FILESYSTEM_POPULATED):
            problems.append(where.problem(
                f"script#{i}", "a filesystem-populated script does nothing in mode restore and "
                               "is ignored: a restore populates no new filesystem (XCP-ng does "
                               "not run it either)", "warning"))
    return problems


def _fresh(answers: AnswerFile, where: Locations) -> list[Problem]:
    problems = _disks(answers, where)
    if answers.admin_interface is None:
        problems.append(where.missing(
            f'no <admin-interface> found: mode {answers.mode} needs one, e.g. '
            '<admin-interface name="eth0" proto="dhcp"/>'))
    else:
        problems += _interface(answers.admin_interface, where)
    problems += _password_hash(answers.root_password_hash, where)
    for i, server in enumerate(answers.name_servers):
        if not _is_ip(server):
            problems.append(where.problem(f"name-server#{i}",
                                          f"name server {server!r} is not an IPv4 or IPv6 "
                                          "address"))
    if not _is_hostname(answers.hostname):
        problems.append(where.problem(
            "hostname", f"hostname {answers.hostname!r} is not valid: allowed dot-separated "
                        "labels of letters, digits and inner hyphens, each 1-63 characters"))
    if _timezones() and answers.timezone not in _timezones():
        problems.append(where.problem(
            "timezone", f"time zone {answers.timezone!r} is unknown: allowed an IANA name such "
                        "as Europe/Paris or Etc/UTC"))
    if not _WORD.fullmatch(answers.keymap):
        problems.append(where.problem("keymap", f"keymap {answers.keymap!r} is not a keymap "
                                                "name such as us or fr-latin9"))
    problems += _ntp(answers, where)
    first_line: dict[str, int] = {}
    for i, service in enumerate(answers.services):
        key = f"service#{i}"
        if not _WORD.fullmatch(service.name):
            problems.append(where.problem(key, f'service name="{service.name}" is not a unit name'))
        elif service.name in first_line:
            line = first_line[service.name]
            first = f" (first on line {line})" if line else ""
            problems.append(where.problem(key, (
                f'service name="{service.name}" is given again{first}: give each service '
                "once, as XCP-ng 8.3 also refuses more")))
        else:
            first_line[service.name] = where.at(key)[0]
    return problems


def _password_hash(digest: str | None, where: Locations) -> list[Problem]:
    if digest is None:
        return []
    scheme = crypt_scheme(digest)
    if scheme is None:
        return [where.problem(
            "root-password", 'type="hash" needs a crypt(3) hash such as SHA-512 ($6$salt$...); '
                             "make one with `xcp-provision answerfile hash-password`")]
    if scheme in WEAK_SCHEMES:
        return [where.problem(
            "root-password", f"the root password hash is {scheme} crypt, which is weak; prefer "
                             "SHA-512 (`xcp-provision answerfile hash-password`)", "warning")]
    return []


def _disks(answers: AnswerFile, where: Locations) -> list[Problem]:
    problems = []
    primary = answers.primary_disk.disk if answers.primary_disk else None
    if primary is not None:
        problems += _disk(primary, "primary-disk", where)
    elif answers.provisioning.disk_rule is None:
        problems.append(where.missing(
            f"no <primary-disk> found: mode {answers.mode} needs one (or our <xp:disk-rule>), "
            "e.g. <primary-disk>sda</primary-disk>"))
    seen = {primary}
    for i, disk in enumerate(answers.guest_disks):
        key = f"guest-disk#{i}"
        problems += _disk(disk, key, where)
        if disk in seen:
            what = "the primary disk" if disk == primary else "listed twice"
            problems.append(where.problem(key, f"guest disk {disk!r} is {what}: each disk may "
                                               "be used once"))
        seen.add(disk)
    if answers.raid is not None:
        problems += _raid(answers, where)
    return problems


def _raid(answers: AnswerFile, where: Locations) -> list[Problem]:
    raid = answers.raid
    primary_disk = answers.primary_disk.disk if answers.primary_disk else None
    problems = []
    if not _MD.fullmatch(raid.device):
        problems.append(where.problem("raid", f'device="{raid.device}" is not allowed: allowed '
                                              "an md device name such as md127"))
    if len(raid.disks) < 2 or len(set(raid.disks)) != len(raid.disks):
        problems.append(where.problem("raid", f"found {len(raid.disks)} <disk> ("
                                              f"{', '.join(raid.disks) or 'none'}): RAID1 needs "
                                              "at least two different disks"))
    for i, disk in enumerate(raid.disks):
        problems += _disk(disk, f"disk#{i}", where)
        if disk in (primary_disk, *answers.guest_disks):
            problems.append(where.problem(f"disk#{i}", f"RAID member {disk!r} is also used as a "
                                                       "primary or guest disk"))
    return problems


def _disk_present(disk: str | None, key: str, needed_by: str, where: Locations) -> list[Problem]:
    if disk is None:
        return [where.missing(f"no <{key}> found: {needed_by} need it, e.g. <{key}>sda</{key}>")]
    return _disk(disk, key, where)


def _disk(disk: str, key: str, where: Locations) -> list[Problem]:
    unsupported = disk_problem(disk)
    if unsupported:
        return [where.problem(key, unsupported)]
    if _DISK.fullmatch(disk) and ".." not in disk:
        return []
    return [where.problem(key, f"disk {disk!r} is not a disk name: allowed a name such as sda "
                               "or a path such as disk/by-id/wwn-0x5000c500a1b2c3d4")]


def _interface(iface: AdminInterface, where: Locations) -> list[Problem]:
    def problem(message: str, key: str = "admin-interface") -> Problem:
        return where.problem(key, message)

    problems = []
    if iface.name is None and iface.hwaddr is None:
        problems.append(problem('found neither name="..." nor hwaddr="...": give one, or both '
                                "naming the same interface"))
    if iface.name is not None and not _IFNAME.fullmatch(iface.name):
        problems.append(problem(f'name="{iface.name}" is not an interface name such as eth0'))
    if iface.hwaddr is not None and not _MAC.fullmatch(iface.hwaddr):
        problems.append(problem(f'hwaddr="{iface.hwaddr}" is not a MAC address such as '
                                "00:16:3e:12:34:56"))
    if iface.vlan is not None and not 1 <= iface.vlan <= 4094:
        problems.append(problem(f'vlan="{iface.vlan}" is out of range: allowed 1-4094'))
    if iface.proto is Proto.NONE and iface.protov6 is ProtoV6.NONE:
        problems.append(problem('neither IPv4 nor IPv6 is configured: set proto="dhcp|static" '
                                'or protov6="dhcp|autoconf|static"'))
    if iface.proto is Proto.STATIC:
        problems += _static_v4(iface, problem)
    if iface.protov6 is ProtoV6.STATIC:
        problems += _static_v6(iface, problem)
    return problems


def _static_v4(iface: AdminInterface, problem: Reporter) -> list[Problem]:
    problems = []
    for tag, value in (("ipaddr", iface.ipaddr), ("subnet", iface.subnet),
                       ("gateway", iface.gateway)):
        if not value:
            problems.append(problem(f'proto="static" needs <{tag}>'))
    if iface.ipaddr and not _is_ip(iface.ipaddr, 4):
        problems.append(problem(f"<ipaddr> {iface.ipaddr!r} is not an IPv4 address", "ipaddr"))
    if iface.gateway and not _is_ip(iface.gateway, 4):
        problems.append(problem(f"<gateway> {iface.gateway!r} is not an IPv4 address",
                                "gateway"))
    if iface.subnet:
        try:
            network = ipaddress.IPv4Network(f"0.0.0.0/{iface.subnet}")
        except ValueError:
            problems.append(problem(f"<subnet> {iface.subnet!r} is not a netmask such as "
                                    "255.255.255.0", "subnet"))
            return problems
        if "." not in iface.subnet:
            problems.append(problem(f"<subnet> {iface.subnet!r} is a prefix length: write the "
                                    f"netmask, {network.netmask}", "subnet"))
        elif not problems and iface.ipaddr and iface.gateway:
            net = ipaddress.IPv4Interface(f"{iface.ipaddr}/{iface.subnet}").network
            if ipaddress.IPv4Address(iface.gateway) not in net:
                outside = problem(f"<gateway> {iface.gateway} is outside {net}", "gateway")
                problems.append(replace(outside, severity="warning"))
    return problems


def _static_v6(iface: AdminInterface, problem: Reporter) -> list[Problem]:
    problems = []
    if not iface.ipv6:
        problems.append(problem('protov6="static" needs <ipv6> (address/prefix)'))
    else:
        try:
            ipaddress.IPv6Interface(iface.ipv6)
            if "/" not in iface.ipv6:
                raise ValueError
        except ValueError:
            problems.append(problem(f"<ipv6> {iface.ipv6!r} is not an IPv6 address/prefix such "
                                    "as 2001:db8::10/64", "ipv6"))
    if not iface.gatewayv6:
        problems.append(problem('protov6="static" needs <gatewayv6>'))
    elif not _is_ip(iface.gatewayv6, 6):
        problems.append(problem(f"<gatewayv6> {iface.gatewayv6!r} is not an IPv6 address",
                                "gatewayv6"))
    return problems


def _ntp(answers: AnswerFile, where: Locations) -> list[Problem]:
    ntp = answers.ntp
    problems = []
    if ntp.source is NtpSource.MANUAL and not ntp.servers:
        problems.append(where.problem("ntp", 'source="manual" needs at least one <ntp-server>'))
    if ntp.source is not NtpSource.MANUAL and ntp.servers:
        problems.append(where.problem("ntp", f'source="{ntp.source}" does not use the '
                                             f"{len(ntp.servers)} <ntp-server> given: use "
                                             'source="manual" or remove them'))
    for i, server in enumerate(ntp.servers):
        if not (_is_ip(server) or _is_hostname(server)):
            problems.append(where.problem(f"ntp-server#{i}", f"NTP server {server!r} is neither "
                                                             "a host name nor an IP address"))
    return problems


def _provisioning(prov: Provisioning, where: Locations) -> list[Problem]:
    problems = []
    if prov.server_url is not None:
        problem = _url_problem(prov.server_url, ("http", "https"))
        if problem:
            problems.append(where.problem("xp:server-url", problem))
    if prov.token is not None and (not prov.token or re.search(r"[\s\x00-\x1f]", prov.token)):
        problems.append(where.problem("xp:token", "the token is empty or contains whitespace"))
    if prov.pool is not None and not prov.pool:
        problems.append(where.problem("xp:pool", "the pool name is empty"))
    if prov.pool is None and prov.pool_force:
        problems.append(where.problem("xp:pool", "force=true is set but no pool is named"))
    rule = prov.disk_rule
    if rule is not None:
        def problem(message: str) -> Problem:
            return where.problem("xp:disk-rule", message)

        criteria = (rule.by_id, rule.serial, rule.wwn, rule.min_size_gib, rule.max_size_gib)
        if all(c is None for c in criteria) and not rule.smallest:
            problems.append(problem("the rule sets nothing and would match any disk: set by-id, "
                                    "serial, wwn, min-size-gib, max-size-gib or smallest"))
        for name, size in (("min-size-gib", rule.min_size_gib),
                           ("max-size-gib", rule.max_size_gib)):
            if size is not None and size <= 0:
                problems.append(problem(f'{name}="{size}" must be a positive number of GiB'))
        if (rule.min_size_gib is not None and rule.max_size_gib is not None
                and rule.min_size_gib > rule.max_size_gib):
            problems.append(problem(f"min-size-gib {rule.min_size_gib} is larger than "
                                    f"max-size-gib {rule.max_size_gib}: no disk can match"))
        if rule.by_id is not None:
            problems += _disk(rule.by_id, "xp:disk-rule", where)
    return problems


def _is_ip(text: str, version: int | None = None) -> bool:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return False
    return version is None or address.version == version


def _is_hostname(text: str) -> bool:
    labels = text.rstrip(".").split(".")
    return 0 < len(text) <= 253 and all(_LABEL.fullmatch(label) for label in labels)


@cache
def _timezones() -> frozenset[str]:
    """The zones this machine knows; empty when it has no tz database, then nothing is checked."""
    return frozenset(zoneinfo.available_timezones())
