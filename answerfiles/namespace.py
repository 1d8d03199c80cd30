"""Our extension elements: what XCP-ng's grammar lacks, in a namespace XCP-ng ignores.

XCP-ng's installer looks elements up by their plain tag name, so an element written with a prefix
(``xp:token``) is invisible to it and a file carrying our extensions stays valid for XCP-ng.
"""

from __future__ import annotations

NS = "urn:xcp-provision:answerfile:1"
PREFIX = "xp"

# Element names inside NS.
PROVISIONING = "provisioning"  # optional wrapper; the others may stand anywhere below the root
SERVER_URL = "server-url"
TOKEN = "token"  # noqa: S105 - an element name, not a secret
POOL = "pool"  # attribute: force="true|false"
DISK_RULE = "disk-rule"  # attributes below

POOL_FORCE = "force"
DISK_RULE_BY_ID = "by-id"
DISK_RULE_SERIAL = "serial"
DISK_RULE_WWN = "wwn"
DISK_RULE_MIN_SIZE = "min-size-gib"
DISK_RULE_MAX_SIZE = "max-size-gib"
DISK_RULE_SMALLEST = "smallest"

ELEMENTS = frozenset({PROVISIONING, SERVER_URL, TOKEN, POOL, DISK_RULE})


def qualified(name: str) -> str:
    """The ``{NS}name`` form the XML parser reports for our element ``name``."""
    return f"{{{NS}}}{name}"
