"""``/etc/mdadm/mdadm.conf`` in the installed dom0, for a host whose primary disk is a mirror.

dom0's mdadm assembles arrays at boot, in its initramfs and after; this file names the array
the host boots from by UUID, so it is assembled as the device the installer made and with its
members, whatever the host's name, and so the initramfs a later kernel update builds carries it.
"""

from __future__ import annotations

import os
from pathlib import Path

from common.dom0_layout import inside
from installer.block.mdadm import Array
from installer.errors import FailedError

MDADM_CONF = "etc/mdadm/mdadm.conf"


def mdadm_conf_text(array: Array) -> str:
    """Debian's defaults (scan every partition, mail root) and one ARRAY line for ``array``."""
    name = f" name={array.name}" if array.name else ""
    return (
        "# Written by xcp-provision: the software RAID1 this host boots from.\n"
        "HOMEHOST <system>\n"
        "MAILADDR root\n"
        f"ARRAY {array.device} metadata={array.metadata}{name} UUID={array.uuid}\n"
    )


def write_mdadm_conf(root: Path, array: Array) -> Path:
    path = inside(root, MDADM_CONF)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(mdadm_conf_text(array))
        tmp.chmod(0o644)
        os.replace(tmp, path)
    except OSError as exc:
        raise FailedError(
            f"cannot write {MDADM_CONF} into {root}: {exc.filename}: {exc.strerror}"
        ) from exc
    return path
