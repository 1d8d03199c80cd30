"""``/loaders/<name>``: the network boot loaders over HTTP, for UEFI HTTP Boot.

A UEFI HTTP Boot client gets a URL from ProxyDHCP instead of a TFTP file name and fetches the
loader (iPXE's ``snponly.efi``) from here: the same files TFTP serves, from the same loader
directory, so a server with TFTP turned off still boots UEFI machines (with ProxyDHCP off too,
nothing copies them there: they are then read from the Debian package's own files). Only the
known loaders are served, by name, never a path. The firmware asks with HEAD first for
the size and type, then GET; it takes the file as an EFI image by its ``application/efi``
content type (the UEFI specification's HTTP Boot section), whatever the URL ends with.
"""

from __future__ import annotations

from flask import Blueprint, Response, send_file
from werkzeug.exceptions import NotFound

from common import wire
from pxe.tftp.loaders import LOADERS
from pxe.web.context import settings

bp = Blueprint("loaders", __name__)

EFI_CONTENT_TYPE = "application/efi"
_KNOWN = {loader.name: loader for loader in LOADERS}


@bp.get(f"{wire.LOADERS}/<name>")
def loader_file(name: str) -> Response:
    loader = _KNOWN.get(name)
    if loader is None:
        raise NotFound(f"no network boot loader named {name!r}; known: {', '.join(sorted(_KNOWN))}")
    path = settings().tftp_root / name
    if not path.is_file():
        path = loader.source
    if not path.is_file():
        raise NotFound(f"loader {name} is not installed: install the Debian package "
                       f"{loader.package}")
    kind = EFI_CONTENT_TYPE if name.endswith(".efi") else "application/octet-stream"
    return send_file(path, mimetype=kind, conditional=True, etag=True, max_age=0)
