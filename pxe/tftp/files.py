"""Per-host boot files, computed on each TFTP request from the host's current BootPlan.

Nothing here is ever written to disk: the inventory decides (``plan_for_mac``), these functions
only render the decision in the dialect of the loader that asked.

* ``pxelinux.cfg/01-<mac>``: for sites that chain syslinux. The kernel and initrds are HTTP URLs
  (everything big goes over HTTP), which only ``lpxelinux.0`` can fetch (classic ``pxelinux.0``
  speaks TFTP only), so that is the pxelinux loader :mod:`pxe.tftp.loaders` ships. WAIT shows
  the reason, then reboots (``reboot.c32``) to ask again: pxelinux cannot re-read its config.
* ``grub/grub.cfg-<mac>`` and ``grub/grub.cfg-01-<mac>``: GRUB's network image asks for
  ``$prefix/grub.cfg-<mac with dashes>`` (upstream GRUB >= 2.06, Debian, Ubuntu) or
  ``grub.cfg-01-<mac>`` (Red Hat and SUSE patched GRUB); both names get the same file. GRUB
  fetches over HTTP with ``(http,host:port)/path`` paths. WAIT sleeps and re-reads the file.
* ``boot.ipxe``: the same for every host; it chains to the server's HTTP endpoint, which decides
  per host (``/boot/ipxe``), so iPXE never needs a per-host TFTP file.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from urllib.parse import urlsplit

from pxe.bootplan import BootAction, BootPlan

PlanForMac = Callable[[str], BootPlan]

_MAC = r"(?P<mac>[0-9a-fA-F]{2}(?:-[0-9a-fA-F]{2}){5})"
_PXELINUX = re.compile(rf"(?:.*/)?pxelinux\.cfg/01-{_MAC}")
_GRUB = re.compile(rf"(?P<dir>(?:.*/)?)grub\.cfg-(?:01-)?{_MAC}")
_GRUB_UNQUOTED = re.compile(r"[A-Za-z0-9_./:=,+@%()-]+")


class UnrenderablePlanError(ValueError):
    """A BootPlan that a loader's syntax cannot express (a newline, a non-HTTP URL)."""

    def __init__(self, loader: str, why: str) -> None:
        super().__init__(f"cannot render this boot plan as a {loader} config: {why}")


def _one_line(loader: str, text: str) -> str:
    if "\n" in text or "\r" in text:
        raise UnrenderablePlanError(loader, f"{text!r} spans several lines")
    return text


def render_pxelinux(plan: BootPlan) -> str:
    """A pxelinux config that boots ``plan`` at once, without a menu."""
    lines = [f"# xcp-provision: {_one_line('pxelinux', plan.reason or plan.action.value)}",
             "PROMPT 0"]
    if plan.action is BootAction.INSTALL:
        if not plan.kernel_url:
            raise UnrenderablePlanError("pxelinux", "an INSTALL plan needs a kernel URL")
        lines += ["DEFAULT install", "LABEL install",
                  f"  KERNEL {_one_line('pxelinux', plan.kernel_url)}"]
        if plan.initrd_urls:
            initrds = ",".join(_one_line("pxelinux", url) for url in plan.initrd_urls)
            lines.append(f"  INITRD {initrds}")
        if plan.cmdline:
            lines.append(f"  APPEND {_one_line('pxelinux', plan.cmdline)}")
    elif plan.action is BootAction.LOCAL:
        lines += ["DEFAULT local", "LABEL local", "  LOCALBOOT 0"]
    else:
        # TIMEOUT counts tenths of a second; the reboot brings the host back to us.
        lines += [f"SAY {_one_line('pxelinux', plan.reason or 'waiting for the server')}",
                  f"SAY asking again in {plan.retry_seconds} s",
                  "DEFAULT wait", f"TIMEOUT {max(1, plan.retry_seconds * 10)}",
                  "LABEL wait", "  COM32 reboot.c32"]
    return "\n".join(lines) + "\n"


def grub_path(url: str) -> str:
    """``http://host:port/p`` as GRUB's ``(http,host:port)/p``."""
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.netloc:
        raise UnrenderablePlanError("GRUB", f"GRUB fetches plain http:// URLs only, not {url!r}")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return f"(http,{parts.netloc}){path}"


def _grub_word(word: str) -> str:
    if _GRUB_UNQUOTED.fullmatch(word):
        return word
    return "'" + word.replace("'", "'\\''") + "'"


def render_grub(plan: BootPlan, self_path: str) -> str:
    """A GRUB config that boots ``plan``; ``self_path`` is this file's own TFTP path (WAIT)."""
    reason = _one_line("GRUB", plan.reason or plan.action.value)
    lines = [f"# xcp-provision: {reason}", "set timeout=0"]
    if plan.action is BootAction.INSTALL:
        if not plan.kernel_url:
            raise UnrenderablePlanError("GRUB", "an INSTALL plan needs a kernel URL")
        args = " ".join(_grub_word(word) for word in _one_line("GRUB", plan.cmdline).split())
        lines += ["insmod http", "menuentry 'xcp-provision install' {",
                  f"  linux {grub_path(plan.kernel_url)} {args}".rstrip()]
        if plan.initrd_urls:
            lines.append("  initrd " + " ".join(grub_path(url) for url in plan.initrd_urls))
        lines.append("}")
    elif plan.action is BootAction.LOCAL:
        # Leaving GRUB hands control back to the firmware, which boots the next entry: the disk.
        lines += ["menuentry 'local disk' {", "  exit", "}"]
    else:
        lines += [f"echo {_grub_word(reason)}",
                  f"echo 'asking again in {plan.retry_seconds} s'",
                  f"sleep {plan.retry_seconds}",
                  f"configfile {_grub_word('(tftp)/' + self_path.lstrip('/'))}"]
    return "\n".join(lines) + "\n"


def render_ipxe_script(http_base_url: str, retry_seconds: int = 10) -> str:
    """The script iPXE runs when a site's DHCP points it at TFTP: hand over to HTTP at once."""
    base = http_base_url.rstrip("/")
    url = (f"{base}/boot/ipxe?mac=${{net0/mac}}&uuid=${{uuid}}"
           "&serial=${serial:uristring}&arch=${buildarch}")
    return "\n".join([
        "#!ipxe",
        "# xcp-provision: the server decides per host over HTTP",
        ":start",
        f"chain --replace --autofree {url} || goto retry",
        ":retry",
        f"echo xcp-provision: {base} did not answer, asking again in {retry_seconds} s",
        f"sleep {retry_seconds}",
        "goto start",
    ]) + "\n"


class GeneratedFiles:
    """The ``generated`` callable of :class:`pxe.tftp.server.TftpService`.

    ``plan_for_mac`` receives a lower-case, colon-separated MAC address.
    """

    def __init__(self, plan_for_mac: PlanForMac, http_base_url: str) -> None:
        self.plan_for_mac = plan_for_mac
        self.ipxe_script = render_ipxe_script(http_base_url).encode()

    def __call__(self, path: str, client_ip: str) -> bytes | None:
        if path == "boot.ipxe":
            return self.ipxe_script
        if match := _PXELINUX.fullmatch(path):
            return render_pxelinux(self.plan_for_mac(_mac(match))).encode()
        if match := _GRUB.fullmatch(path):
            return render_grub(self.plan_for_mac(_mac(match)), path).encode()
        return None


def _mac(match: re.Match[str]) -> str:
    return match["mac"].lower().replace("-", ":")
