"""A BootPlan as an iPXE script, and the scripts that bring iPXE to the server to ask for one.

The script is short and self-healing: a failed download or an unknown host sleeps and chains
back to the server, so a rack that powers on before its profile exists picks it up later
without anyone touching it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import urlencode, urlsplit

from common import wire
from pxe.boot.plan import BootAction, BootPlan

# iPXE expands ${...} and chains on && and ||; keep our text literal.
_UNSAFE = re.compile(r"[^\x20-\x7e]|[$&|]")
# When the caller does not know its own URL, ${filename} is the boot URL DHCP handed iPXE.
_AGAIN = "${filename}"
# The identity a request for a plan carries: each query parameter and the iPXE setting it is.
_IDENTITY = {"mac": "${net0/mac}", "uuid": "${uuid}", "serial": "${serial:uristring}",
            "arch": "${buildarch}"}


def _text(value: str) -> str:
    return _UNSAFE.sub("", value)


def _image_name(url: str) -> str:
    """The name iPXE gives an image it downloads: the last segment of the URL's path."""
    return _text(urlsplit(url).path.rsplit("/", 1)[-1])


def _retry(plan: BootPlan, again_url: str, why: str) -> list[str]:
    return [
        f"echo xcp-provision: {why}; asking again in {plan.retry_seconds} s",
        f"sleep {plan.retry_seconds}",
        f"chain --replace --autofree {again_url}",
    ]


def render_ipxe(plan: BootPlan, *, again_url: str | None = None) -> str:
    """The iPXE script for ``plan``; ``again_url`` is where to ask again after a wait."""
    again = again_url or _AGAIN
    lines = ["#!ipxe", f"# xcp-provision: {plan.action.value}: {_text(plan.reason)}"]
    if plan.action == BootAction.INSTALL:
        if not plan.kernel_url:
            raise ValueError("an INSTALL plan needs a kernel URL")
        # Debian's iPXE (2019) hands an EFI kernel its initrd only when the command line names
        # it: the EFI stub loads initrd=NAME from iPXE's images. BIOS kernels ignore the word.
        names = " ".join(f"initrd={_image_name(url)}" for url in plan.initrd_urls)
        args = f"{plan.cmdline} {names}".strip()
        lines += ["imgfree", f"kernel {plan.kernel_url} {args} || goto failed".rstrip()]
        lines += [f"initrd {url} || goto failed" for url in plan.initrd_urls]
        lines += ["boot || goto failed", ":failed"]
        lines += _retry(plan, again, "installer download or boot failed")
    elif plan.action == BootAction.LOCAL:
        lines += [
            f"echo xcp-provision: {_text(plan.reason)}",
            # UEFI: hand back to the firmware's next boot entry; BIOS: boot the first disk.
            "iseq ${platform} efi && exit ||",
            "sanboot --no-describe --drive 0x80 || exit",
        ]
    elif plan.action == BootAction.DENY:
        # Not a loop back to us: the firmware goes on to its next boot entry.
        lines += [f"echo xcp-provision: {_text(plan.reason)}", f"sleep {plan.retry_seconds}",
                  "exit 1"]
    else:
        lines += _retry(plan, again, _text(plan.reason))
    return "\n".join(lines) + "\n"


def identity_url(base_url: str) -> str:
    """The boot URL with iPXE filling in who is asking (MAC, UUID, serial, architecture)."""
    query = "&".join(f"{name}={setting}" for name, setting in _IDENTITY.items())
    return f"{wire.boot_ipxe_url(base_url)}?{query}"


def again_url(base_url: str, asked: Iterable[tuple[str, str]]) -> str:
    """The boot URL asking again with the identity a request sent (``asked``: its query
    parameters, in order)."""
    return f"{wire.boot_ipxe_url(base_url)}?" + urlencode(
        {name: value for name, value in asked if name in _IDENTITY}
    )


def chain_script(base_url: str) -> str:
    """What a bare ``/boot/ipxe`` returns: ask again, this time saying who we are."""
    return f"#!ipxe\nchain {identity_url(base_url)}\n"


def render_ipxe_script(http_base_url: str, retry_seconds: int = 10) -> str:
    """The script iPXE runs when a site's DHCP points it at TFTP (``boot.ipxe``): hand over to
    HTTP at once, and keep trying until the server answers."""
    base = http_base_url.rstrip("/")
    return "\n".join([
        "#!ipxe",
        "# xcp-provision: the server decides per host over HTTP",
        ":start",
        f"chain --replace --autofree {identity_url(base)} || goto retry",
        ":retry",
        f"echo xcp-provision: {base} did not answer, asking again in {retry_seconds} s",
        f"sleep {retry_seconds}",
        "goto start",
    ]) + "\n"
