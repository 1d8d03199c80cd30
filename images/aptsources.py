"""The Debian mirror this machine's apt uses, for debootstrap and chroots.

Build hosts reach nothing but their configured mirror (often a proxy or a snapshot), so image
builds must use exactly that, read from ``/etc/apt/sources.list`` and ``sources.list.d`` in
either format (one-line or deb822). Third-party repositories there are ignored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from images.errors import ImageError

APT_DIR = Path("/etc/apt")


class AptSourcesError(ImageError):
    """No Debian mirror for the wanted suite is configured on this machine."""


@dataclass(frozen=True)
class AptSources:
    mirror: str  # serves SUITE and SUITE-updates
    security: str | None  # serves SUITE-security

    def sources_list(self, suite: str) -> str:
        lines = [f"deb {self.mirror} {suite} main", f"deb {self.mirror} {suite}-updates main"]
        if self.security:
            lines.append(f"deb {self.security} {suite}-security main")
        return "\n".join(lines) + "\n"


def _entries(apt_dir: Path) -> list[tuple[str, str]]:
    """(uri, suite) of every deb entry, from both formats."""
    entries: list[tuple[str, str]] = []
    files = [apt_dir / "sources.list", *sorted((apt_dir / "sources.list.d").glob("*.list"))]
    for path in files:
        if not path.is_file():
            continue
        for line in path.read_text().splitlines():
            words = re.sub(r"\[[^\]]*\]", " ", line.split("#", 1)[0]).split()
            if len(words) >= 3 and words[0] == "deb":
                entries.append((words[1], words[2]))
    for path in sorted((apt_dir / "sources.list.d").glob("*.sources")):
        for stanza in path.read_text().split("\n\n"):
            fields: dict[str, str] = {}
            for line in stanza.splitlines():
                key, sep, value = line.partition(":")
                if sep and not line.startswith((" ", "#")):
                    fields[key.strip().lower()] = value.strip()
            if "deb" not in fields.get("types", "").split() or fields.get("enabled") == "no":
                continue
            for uri in fields.get("uris", "").split():
                entries.extend((uri, suite) for suite in fields.get("suites", "").split())
    return entries


def host_sources(suite: str, apt_dir: Path = APT_DIR) -> AptSources:
    entries = _entries(apt_dir)
    mirrors = [uri for uri, s in entries if s == suite]
    if not mirrors:
        raise AptSourcesError(
            f"no apt source for Debian {suite} in {apt_dir}; add the mirror to sources.list"
        )
    security = [uri for uri, s in entries if s in (f"{suite}-security", f"{suite}/updates")]
    return AptSources(mirrors[0].rstrip("/"), security[0].rstrip("/") if security else None)
