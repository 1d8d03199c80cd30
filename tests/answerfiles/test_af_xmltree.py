"""The element tree the reader works on: names as ElementTree spells them, lines, paths, text."""

from __future__ import annotations

from answerfiles.namespace import NS
from answerfiles.xmltree import parse_xml

TEXT = f"""<?xml version="1.0"?>
<installation mode="fresh" xmlns:xp="{NS}">
  <hostname> node1 </hostname>
  <xp:provisioning>
    <xp:pool force="yes" xp:note="n">rack <![CDATA[2]]></xp:pool>
  </xp:provisioning>
</installation>
"""


def test_tree_names_lines_paths_and_text() -> None:
    root = parse_xml(TEXT, "t.xml")
    assert (root.tag, root.attrs, root.line, root.path) == (
        "installation", {"mode": "fresh"}, 2, "installation")  # fmt: skip
    hostname, provisioning = root.children
    assert (hostname.text, hostname.line, hostname.path) == ("node1", 3, "installation/hostname")
    (pool,) = provisioning.children
    assert pool.tag == f"{{{NS}}}pool"
    assert pool.attrs == {"force": "yes", f"{{{NS}}}note": "n"}
    assert (pool.text, pool.line, pool.path) == ("rack 2", 5,
                                                 "installation/xp:provisioning/xp:pool")
    assert [n.tag for n in root.iter()] == ["hostname", f"{{{NS}}}provisioning", f"{{{NS}}}pool"]
