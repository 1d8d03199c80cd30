"""The paths the installer, the first-boot agent and the server agree on, written once.

The server's routes are declared from these constants and the clients build their URLs with the
functions below, so a path cannot drift between the two sides. Everything here is standard
library, because the first-boot agent runs it inside dom0 with nothing else installed.
"""

from __future__ import annotations

from urllib.parse import quote

BOOT_IPXE = "/boot/ipxe"  # the iPXE script a network-booting host asks for
ANSWERFILE = "/answerfile"  # /answerfile/<host id or MAC>?token=...
RELEASES = "/releases"  # /releases/<name>/<file>
INSTALLS = "/api/v1/installs"  # progress reports of an installing host
INSTALL_EVENTS = f"{INSTALLS}/events"
INSTALL_FAILED = f"{INSTALLS}/failed"
INSTALL_DONE = f"{INSTALLS}/done"
REGISTER = "/api/v1/register"  # the installed host's first boot calls home
HEALTH = "/api/v1/health"  # then reports its health, with the report token registration gave
LOADERS = "/loaders"  # /loaders/<name>: network boot loaders for UEFI HTTP Boot


def authority(host: str, port: int) -> str:
    """``host:port`` as a URL writes it: an IPv6 literal in brackets (RFC 3986)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _join(base_url: str, path: str) -> str:
    return base_url.rstrip("/") + path


def boot_ipxe_url(base_url: str) -> str:
    return _join(base_url, BOOT_IPXE)


def loader_url(base_url: str, name: str) -> str:
    return _join(base_url, f"{LOADERS}/{quote(name)}")


def answerfile_url(base_url: str, host_ref: int | str, token: str) -> str:
    return _join(base_url, f"{ANSWERFILE}/{host_ref}?token={quote(token, safe='')}")


def release_url(base_url: str, name: str, rel_path: str = "") -> str:
    return _join(base_url, f"{RELEASES}/{name}/{rel_path}")


def install_report_url(base_url: str, path: str) -> str:
    """``path`` is one of INSTALL_EVENTS, INSTALL_FAILED, INSTALL_DONE."""
    return _join(base_url, path)


def register_url(base_url: str) -> str:
    return _join(base_url, REGISTER)


def health_url(base_url: str) -> str:
    return _join(base_url, HEALTH)
