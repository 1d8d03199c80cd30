"""Rendering per-host answer files: bundled templates, missing variables, injection, sandbox."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from answerfiles import render
from answerfiles.errors import AnswerFileError
from answerfiles.model import Mode, NtpSource, Proto, ProtoV6
from answerfiles.parse import parse_answerfile
from answerfiles.password import hash_password
from answerfiles.render import RenderError, list_templates, render_template

HASH = hash_password("correct horse")
BASE = {
    "hostname": "xen-07.rack2.example.com",
    "primary_disk": "disk/by-id/wwn-0x5000c500a1b2c3d4",
    "source_url": "http://repo.example.com/xcp-ng/8.3/",
    "server_url": "https://provision.example.com/",
    "token": "tok-3f9a",
}
STATIC = {**BASE, "ipaddr": "192.0.2.70", "netmask": "255.255.255.0", "gateway": "192.0.2.1",
          "vlan": 120, "nameservers": ["192.0.2.53", "192.0.2.54"]}


def rendered(template: str, variables: dict[str, object]):
    return parse_answerfile(render_template(template, variables, host="xen-07"), "out.xml")


def test_bundled_templates() -> None:
    assert list_templates() == [
        "fresh-autoconf-ipv6", "fresh-dhcp", "fresh-dhcp-ipv6", "fresh-static", "fresh-static-ipv6",
        "restore", "upgrade"
    ]  # fmt: skip


def test_fresh_dhcp() -> None:
    parsed = rendered("fresh-dhcp", {**BASE, "root_password_hash": HASH, "pool": "rack2"})
    af = parsed.answers
    assert parsed.warnings == ()
    assert af.mode is Mode.FRESH
    assert af.hostname == BASE["hostname"]
    assert af.primary_disk.disk == BASE["primary_disk"]
    assert af.sources[0].location == BASE["source_url"]
    assert af.admin_interface.proto is Proto.DHCP
    assert af.admin_interface.name == "eth0"
    assert af.root_password_hash == HASH
    assert af.ntp.source is NtpSource.DHCP
    assert (af.provisioning.server_url, af.provisioning.token) == (
        BASE["server_url"], BASE["token"])
    assert (af.provisioning.pool, af.provisioning.pool_force) == ("rack2", False)


def test_fresh_dhcp_optional_variables_may_be_absent_or_empty() -> None:
    af = rendered("fresh-dhcp", {**BASE, "pool": None, "root_password_hash": ""}).answers
    assert af.provisioning.pool is None
    assert af.root_password_hash is None


def test_fresh_static_with_vlan() -> None:
    af = rendered("fresh-static", {**STATIC, "mac": "00:16:3e:aa:bb:cc", "pool": "rack2",
                                   "pool_force": "true", "ntp_servers": "ntp.example.com"}).answers
    iface = af.admin_interface
    assert (iface.hwaddr, iface.name) == ("00:16:3e:aa:bb:cc", None)
    assert (iface.proto, iface.vlan) == (Proto.STATIC, 120)
    assert (iface.ipaddr, iface.subnet, iface.gateway) == (
        "192.0.2.70", "255.255.255.0", "192.0.2.1")
    assert af.name_servers == ("192.0.2.53", "192.0.2.54")
    assert af.ntp.source is NtpSource.MANUAL
    assert af.ntp.servers == ("ntp.example.com",)
    assert af.provisioning.pool_force is True


def test_fresh_static_nameservers_as_comma_separated_text() -> None:
    af = rendered("fresh-static", {**STATIC, "nameservers": "192.0.2.53, 192.0.2.54",
                                   "vlan": ""}).answers
    assert af.name_servers == ("192.0.2.53", "192.0.2.54")
    assert af.admin_interface.vlan is None


def test_fresh_static_ipv6_has_no_ipv4() -> None:
    variables = {
        **BASE,
        "server_url": "http://[2001:db8::1]:8080",
        "ipv6": "2001:db8:6::10/64",
        "gatewayv6": "2001:db8:6::1",
        "vlan": 120,
        "nameservers": "2001:db8::53",
    }
    parsed = rendered("fresh-static-ipv6", variables)
    assert parsed.warnings == ()
    iface = parsed.answers.admin_interface
    assert (iface.proto, iface.protov6) == (Proto.NONE, ProtoV6.STATIC)
    assert (iface.ipv6, iface.gatewayv6, iface.vlan) == ("2001:db8:6::10/64", "2001:db8:6::1", 120)
    assert (iface.ipaddr, iface.gateway) == (None, None)
    assert parsed.answers.name_servers == ("2001:db8::53",)
    assert parsed.answers.provisioning.server_url == "http://[2001:db8::1]:8080"
    with pytest.raises(RenderError, match="gatewayv6"):
        render_template("fresh-static-ipv6", {**variables, "gatewayv6": "192.0.2.1"}, host="h")


def test_fresh_autoconf_ipv6_has_no_address_of_its_own() -> None:
    variables = {**BASE, "mac": "00:16:3e:aa:bb:cc", "vlan": 120,
                 "nameservers": "2001:db8::53, 2001:db8::54"}  # fmt: skip
    parsed = rendered("fresh-autoconf-ipv6", variables)
    assert parsed.warnings == ()
    iface = parsed.answers.admin_interface
    assert (iface.proto, iface.protov6) == (Proto.NONE, ProtoV6.AUTOCONF)
    assert (iface.hwaddr, iface.vlan) == ("00:16:3e:aa:bb:cc", 120)
    assert (iface.ipaddr, iface.ipv6, iface.gatewayv6) == (None, None, None)
    assert parsed.answers.name_servers == ("2001:db8::53", "2001:db8::54")
    bare = rendered("fresh-autoconf-ipv6", BASE).answers
    assert (bare.admin_interface.name, bare.admin_interface.vlan) == ("eth0", None)
    assert bare.name_servers == ()


def test_fresh_dhcp_ipv6_is_the_autoconf_template_on_dhcpv6() -> None:
    variables = {**BASE, "mac": "00:16:3e:aa:bb:cc", "nameservers": "2001:db8::53"}
    parsed = rendered("fresh-dhcp-ipv6", variables)
    assert parsed.warnings == ()
    iface = parsed.answers.admin_interface
    assert (iface.proto, iface.protov6, iface.ipv6) == (Proto.NONE, ProtoV6.DHCP, None)
    assert iface.hwaddr == "00:16:3e:aa:bb:cc"
    assert parsed.answers.name_servers == ("2001:db8::53",)


def test_upgrade_and_restore() -> None:
    upgrade = rendered("upgrade", BASE).answers
    assert upgrade.mode is Mode.UPGRADE
    assert upgrade.existing_installation == BASE["primary_disk"]
    restore = rendered("restore", BASE).answers
    assert restore.mode is Mode.RESTORE
    assert restore.backup_disk == BASE["primary_disk"]


def test_missing_variable_is_named() -> None:
    variables = {k: v for k, v in STATIC.items() if k != "gateway"}
    with pytest.raises(RenderError) as caught:
        render_template("fresh-static", variables, host="xen-07")
    message = str(caught.value)
    assert "'gateway' is undefined" in message
    assert "template 'fresh-static' for host 'xen-07'" in message


def test_hostname_cannot_inject_elements() -> None:
    evil = "a</hostname><root-password>x</root-password><hostname>b"
    with pytest.raises(RenderError) as caught:
        render_template("fresh-dhcp", {**BASE, "hostname": evil}, host="xen-07")
    (problem,) = caught.value.problems
    assert problem.path == "installation/hostname"
    assert "is not valid" in problem.message
    assert "template 'fresh-dhcp' for host 'xen-07'" in str(caught.value)


def test_attribute_value_cannot_add_attributes() -> None:
    with pytest.raises(RenderError, match=r"name=\"eth0\" proto=.*is not an interface name"):
        render_template("fresh-dhcp", {**BASE, "interface": 'eth0" proto="static'}, host="h")


def test_free_text_value_arrives_verbatim() -> None:
    """A token may hold any character; escaping keeps it one value and nothing more."""
    token = "x</xp:token><root-password>pw</root-password><xp:token>&amp;\"'"
    af = rendered("fresh-dhcp", {**BASE, "token": token}).answers
    assert af.provisioning.token == token
    assert af.root_password_hash is None


def test_sandbox_refuses_python_internals(tmp_path: Path) -> None:
    template = tmp_path / "evil.xml.j2"
    template.write_text("<installation>{{ ''.__class__.__mro__[1].__subclasses__() }}"
                        "</installation>")
    with pytest.raises(RenderError, match="refused by the sandbox"):
        render_template(str(template), {}, host="h")


def test_template_from_a_path_with_syntax_error(tmp_path: Path) -> None:
    template = tmp_path / "broken.xml.j2"
    template.write_text("<installation>\n{% if %}\n</installation>\n")
    with pytest.raises(RenderError) as caught:
        render_template(str(template), {}, host="h")
    (problem,) = caught.value.problems
    assert problem.line == 2
    assert problem.message.startswith("syntax error")


def test_template_from_a_path(tmp_path: Path) -> None:
    template = tmp_path / "mine.xml.j2"
    template.write_text('<installation mode="upgrade"><existing-installation>{{ disk }}'
                        '</existing-installation><source type="local"/></installation>')
    af = parse_answerfile(render_template(str(template), {"disk": "sdb"})).answers
    assert af.existing_installation == "sdb"


def test_invalid_output_is_an_answerfile_error_naming_template_and_host() -> None:
    with pytest.raises(AnswerFileError) as caught:
        render_template("fresh-static", {**STATIC, "vlan": 5000}, host="xen-07")
    assert isinstance(caught.value, RenderError)
    (problem,) = caught.value.problems
    assert str(problem).startswith("fresh-static.xml.j2 rendered for xen-07:5: "
                                   "installation/admin-interface: vlan=\"5000\" is out of range")


def test_unknown_template_lists_the_bundled_ones() -> None:
    with pytest.raises(
        RenderError,
        match="allowed fresh-autoconf-ipv6, fresh-dhcp, fresh-dhcp-ipv6, fresh-static, "
        "fresh-static-ipv6, restore, upgrade",
    ):
        render_template("fresh", BASE)


def test_fresh_static_without_nameservers_or_vlan() -> None:
    variables = {k: v for k, v in STATIC.items() if k not in ("nameservers", "vlan")}
    af = rendered("fresh-static", {**variables, "ntp_servers": None}).answers
    assert af.name_servers == ()
    assert af.admin_interface.vlan is None
    assert af.ntp.source is NtpSource.DEFAULT


def test_edited_template_file_is_rendered_afresh(tmp_path: Path) -> None:
    template = tmp_path / "mine.xml.j2"
    body = ('<installation mode="upgrade"><existing-installation>{}</existing-installation>'
            '<source type="local"/></installation>')
    template.write_text(body.format("sda"))
    assert "sda" in render_template(str(template), {})
    template.write_text(body.format("sdb"))
    os.utime(template, ns=(1, template.stat().st_mtime_ns + 10**9))
    assert "sdb" in render_template(str(template), {})


def test_edited_include_is_rendered_afresh(tmp_path: Path) -> None:
    template, partial = tmp_path / "main.xml.j2", tmp_path / "_part.xml.j2"
    template.write_text('<installation mode="upgrade">{% include "_part.xml.j2" %}'
                        '<source type="local"/></installation>')
    body = "<existing-installation>{}</existing-installation>"
    partial.write_text(body.format("sda"))
    assert "sda" in render_template(str(template), {})
    partial.write_text(body.format("sdb"))
    os.utime(partial, ns=(1, partial.stat().st_mtime_ns + 10**9))
    assert "sdb" in render_template(str(template), {})


def test_a_template_added_to_the_bundled_folder_is_found(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "bundled"
    folder.mkdir()
    (folder / "one.xml.j2").write_text(
        '<installation mode="upgrade"><existing-installation>sda</existing-installation>'
        '<source type="local"/></installation>')  # fmt: skip
    monkeypatch.setattr(render, "TEMPLATES", folder)
    assert list_templates() == ["one"]
    with pytest.raises(RenderError, match="no bundled template named 'two': allowed one,"):
        render_template("two", {})
    (folder / "one.xml.j2").rename(folder / "two.xml.j2")
    assert list_templates() == ["two"]
    assert "sda" in render_template("two", {})
