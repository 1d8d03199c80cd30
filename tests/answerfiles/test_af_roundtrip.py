"""``parse(write(m)) == m`` for every valid model, and the written XML reads the same in XCP-ng."""

from __future__ import annotations

import ipaddress
from xml.dom import minidom

from hypothesis import given, settings
from hypothesis import strategies as st

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
    Script,
    ScriptStage,
    Service,
    ServiceState,
    Source,
    SourceType,
    SrType,
)
from answerfiles.parse import parse_answerfile
from answerfiles.write import write_answerfile


def regex(pattern: str) -> st.SearchStrategy[str]:
    return st.from_regex(pattern, fullmatch=True)


label = regex(r"[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?")
hostnames = st.lists(label, min_size=1, max_size=3).map(".".join)
disks = st.one_of(regex(r"sd[a-z]|nvme[0-9]n1|/dev/sd[a-z]"),
                  regex(r"disk/by-id/(wwn-0x[0-9a-f]{8}|ata-[A-Z0-9_]{1,12})"))
urls = st.builds("{}://{}/{}".format, st.sampled_from(["http", "https", "ftp"]), hostnames,
                 regex(r"[A-Za-z0-9._/-]{0,20}"))
nfs = st.builds("{}:/{}".format, hostnames, regex(r"[a-z0-9_/]{0,12}"))
ipv4 = st.ip_addresses(v=4).map(str)
ipv6 = st.ip_addresses(v=6).map(str)
printable = regex(r"[!-~]{1,16}")  # every XML-special character; tokens hold no spaces


@st.composite
def sources(draw) -> Source:
    """What the installer can read a release from: NFS is refused (answerfiles.validate)."""
    kind = draw(st.sampled_from([SourceType.URL, SourceType.LOCAL]))
    location = draw(urls) if kind is SourceType.URL else ""
    gpg = st.none() | st.booleans()
    return Source(kind, location, gpgcheck=draw(gpg), repo_gpgcheck=draw(gpg))


# What the installer can fetch a script from (answerfiles.unsupported refuses the others).
script_urls = st.builds("{}://{}/{}".format, st.sampled_from(["http", "https"]), hostnames,
                        regex(r"[A-Za-z0-9._/-]{0,20}"))


@st.composite
def scripts(draw, mode: Mode) -> Script:
    stages = [s for s in ScriptStage
              if not (mode is Mode.RESTORE and s is ScriptStage.FILESYSTEM_POPULATED)]
    return Script(draw(st.sampled_from(stages)), SourceType.URL, draw(script_urls))


@st.composite
def interfaces(draw) -> AdminInterface:
    protos = draw(st.tuples(st.sampled_from(Proto), st.sampled_from(ProtoV6)).filter(
        lambda p: p != (Proto.NONE, ProtoV6.NONE)))
    by_name = draw(st.booleans())
    v4 = protos[0] is Proto.STATIC
    v6 = protos[1] is ProtoV6.STATIC
    prefix = draw(st.integers(1, 32))
    return AdminInterface(
        name=draw(regex(r"(eth|eno|enp[0-9]s)[0-9]{1,2}")) if by_name else None,
        hwaddr=None if by_name else draw(regex(r"([0-9a-f]{2}:){5}[0-9a-f]{2}")),
        proto=protos[0],
        protov6=protos[1],
        vlan=draw(st.none() | st.integers(1, 4094)),
        ipaddr=draw(ipv4) if v4 else None,
        subnet=str(ipaddress_mask(prefix)) if v4 else None,
        gateway=draw(ipv4) if v4 else None,
        ipv6=f"{draw(ipv6)}/{draw(st.integers(1, 128))}" if v6 else None,
        gatewayv6=draw(ipv6) if v6 else None,
    )


def ipaddress_mask(prefix: int) -> str:
    return str(ipaddress.IPv4Network(f"0.0.0.0/{prefix}").netmask)


hashes = regex(r"\$6\$(rounds=[1-9][0-9]{3}\$)?[./0-9A-Za-z]{1,16}\$[./0-9A-Za-z]{86}")


@st.composite
def disk_rules(draw) -> DiskRule:
    low = draw(st.none() | st.integers(1, 4000))
    high = draw(st.none() | st.integers(low or 1, 8000))
    rule = DiskRule(
        by_id=draw(st.none() | regex(r"disk/by-id/wwn-0x[0-9a-f]{8}")),
        serial=draw(st.none() | regex(r"[A-Z0-9]{4,12}")),
        wwn=draw(st.none() | regex(r"0x[0-9a-f]{16}")),
        min_size_gib=low,
        max_size_gib=high,
        smallest=draw(st.booleans()),
    )
    return rule if rule != DiskRule() else DiskRule(smallest=True)


@st.composite
def provisionings(draw, rule: bool) -> Provisioning:
    pool = draw(st.none() | regex(r"[a-z][a-z0-9-]{0,10}"))
    return Provisioning(
        server_url=draw(st.none() | st.builds("https://{}/".format, hostnames)),
        token=draw(st.none() | printable),
        pool=pool,
        pool_force=pool is not None and draw(st.booleans()),
        disk_rule=draw(st.none() | disk_rules()) if rule else None,
    )


@st.composite
def fresh_fields(draw) -> dict[str, object]:
    rule_only = draw(st.booleans())
    prov = draw(provisionings(rule=True))
    if rule_only and prov.disk_rule is None:
        prov = Provisioning(prov.server_url, prov.token, prov.pool, prov.pool_force,
                            DiskRule(min_size_gib=64, smallest=True))
    # sr-at-end="false" is refused (answerfiles.unsupported): the SR is always at the end.
    primary = None if rule_only else PrimaryDisk(
        draw(disks), draw(st.booleans()), True, draw(st.sampled_from(PreserveFirstPartition)))
    taken = {primary.disk if primary else ""}
    guests = draw(st.lists(disks.filter(lambda d: d not in taken), unique=True, max_size=3))
    ntp_source = draw(st.sampled_from(NtpSource))
    servers = draw(st.lists(ipv4 | hostnames, min_size=1, max_size=3)) \
        if ntp_source is NtpSource.MANUAL else []
    return {
        "sr_type": draw(st.none() | st.sampled_from(SrType)),
        "primary_disk": primary,
        "guest_disks": tuple(guests),
        "admin_interface": draw(interfaces()),
        "root_password_hash": draw(st.none() | hashes),
        "name_servers": tuple(draw(st.lists(ipv4 | ipv6, max_size=3))),
        "hostname": draw(hostnames),
        "timezone": draw(st.sampled_from(["Etc/UTC", "Europe/Paris", "America/New_York"])),
        "keymap": draw(st.sampled_from(["us", "fr", "de-latin1", "uk"])),
        "ntp": Ntp(ntp_source, tuple(servers)),
        "services": tuple(Service(name, state) for name, state in draw(st.lists(
            st.tuples(regex(r"[a-z][a-z0-9-]{0,10}"), st.sampled_from(ServiceState)),
            max_size=2, unique_by=lambda service: service[0]))),
        "provisioning": prov,
    }


@st.composite
def answer_files(draw) -> AnswerFile:
    # Only what validates: reinstall, driver sources and a confirmation prompt are refused
    # (answerfiles.unsupported), so a valid model never holds them.
    mode = draw(st.sampled_from([m for m in Mode if m is not Mode.REINSTALL]))
    common = {
        "mode": mode,
        "scripts": tuple(draw(st.lists(scripts(mode), max_size=3))),
    }
    if mode is Mode.RESTORE:
        return AnswerFile(**common, backup_disk=draw(st.none() | disks),
                          provisioning=draw(provisionings(rule=False)))
    common |= {
        "gpgcheck": draw(st.none() | st.booleans()),
        "repo_gpgcheck": draw(st.none() | st.booleans()),
        "sources": (draw(sources()),),  # one release, from one source
        "bootloader": Bootloader(BootloaderLocation.MBR, draw(st.booleans())),
        "network_backend": draw(st.sampled_from(NetworkBackend)),
    }
    if mode is Mode.UPGRADE:
        return AnswerFile(**common, existing_installation=draw(disks),
                          provisioning=draw(provisionings(rule=False)))
    return AnswerFile(**common, **draw(fresh_fields()))


@settings(max_examples=200, deadline=None)
@given(answer_files())
def test_parse_of_write_is_identity(answers: AnswerFile) -> None:
    parsed = parse_answerfile(write_answerfile(answers), "written.xml")
    assert parsed.answers == answers


@settings(max_examples=50, deadline=None)
@given(answer_files())
def test_written_files_read_the_same_by_name_as_xcpng_does(answers: AnswerFile) -> None:
    """XCP-ng's own lookups (minidom, plain tag names) see no extension and a correct mode."""
    dom = minidom.parseString(write_answerfile(answers))
    root = dom.documentElement
    if answers.mode is Mode.RESTORE:
        assert root.tagName == "restore"
    else:
        assert root.getAttribute("mode") == answers.mode.value
    assert dom.getElementsByTagName("token") == []
    prompts = dom.getElementsByTagName("ui-confirmation-prompt")
    # XCP-ng treats any text there as true, so the element exists exactly when the answer is yes.
    assert bool(prompts) is answers.ui_confirmation_prompt
