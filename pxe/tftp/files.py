"""Per-host boot files, computed on each TFTP request from the host's current BootPlan.

Nothing here is ever written to disk: the inventory decides (``plan_for_mac``, see
:mod:`pxe.boot.decide`), :mod:`pxe.boot.render` writes the decision in the dialect of the loader
that asked; this module only maps a requested path to the loader and the MAC it names.

* ``pxelinux.cfg/01-<mac>``: for sites that chain syslinux (``lpxelinux.0``).
* ``grub/grub.cfg-<mac>`` and ``grub/grub.cfg-01-<mac>``: GRUB's network image asks for
  ``$prefix/grub.cfg-<mac with dashes>`` (upstream GRUB >= 2.06, Debian, Ubuntu) or
  ``grub.cfg-01-<mac>`` (Red Hat and SUSE patched GRUB); both names get the same file.
* ``boot.ipxe``: the same for every host; it chains to the server's HTTP endpoint, which decides
  per host (``/boot/ipxe``), so iPXE never needs a per-host TFTP file.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from pxe.boot.plan import BootPlan
from pxe.boot.render.grub import render_grub
from pxe.boot.render.ipxe import render_ipxe_script
from pxe.boot.render.pxelinux import render_pxelinux
from pxe.store.macs import normalise_mac

# (MAC, the asking client's address) -> its plan; the address counts for discovery's limits.
PlanForMac = Callable[[str, str], BootPlan]

_MAC = r"(?P<mac>[0-9a-fA-F]{2}(?:-[0-9a-fA-F]{2}){5})"
_PXELINUX = re.compile(rf"(?:.*/)?pxelinux\.cfg/01-{_MAC}")
_GRUB = re.compile(rf"(?P<dir>(?:.*/)?)grub\.cfg-(?:01-)?{_MAC}")


class GeneratedFiles:
    """The ``generated`` callable of :class:`pxe.tftp.server.TftpService`.

    ``plan_for_mac`` receives a lower-case, colon-separated MAC address and the client's IP
    address. It is :func:`pxe.boot.decide.plan_for_mac`, the one decision HTTP asks too: the
    install cycle's rule (one token per cycle) and discovery's limits hold for these files.
    """

    def __init__(self, plan_for_mac: PlanForMac, http_base_url: str) -> None:
        self.plan_for_mac = plan_for_mac
        self.ipxe_script = render_ipxe_script(http_base_url).encode()

    def __call__(self, path: str, client_ip: str) -> bytes | None:
        if path == "boot.ipxe":
            return self.ipxe_script
        if match := _PXELINUX.fullmatch(path):
            plan = self.plan_for_mac(normalise_mac(match["mac"]), client_ip)
            return render_pxelinux(plan).encode()
        if match := _GRUB.fullmatch(path):
            plan = self.plan_for_mac(normalise_mac(match["mac"]), client_ip)
            return render_grub(plan, path).encode()
        return None
