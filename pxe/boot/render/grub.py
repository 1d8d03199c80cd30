"""A BootPlan as a GRUB config (``grub/grub.cfg-<mac>``, ``grub/grub.cfg-01-<mac>``).

GRUB fetches over HTTP with ``(http,host:port)/path`` paths. WAIT sleeps and re-reads the same
file over TFTP, which asks the server again.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from pxe.boot.plan import BootAction, BootPlan
from pxe.boot.render import UnrenderablePlanError, one_line

_GRUB_UNQUOTED = re.compile(r"[A-Za-z0-9_./:=,+@%()-]+")


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
    reason = one_line("GRUB", plan.reason or plan.action.value)
    lines = [f"# xcp-provision: {reason}", "set timeout=0"]
    if plan.action is BootAction.INSTALL:
        if not plan.kernel_url:
            raise UnrenderablePlanError("GRUB", "an INSTALL plan needs a kernel URL")
        args = " ".join(_grub_word(word) for word in one_line("GRUB", plan.cmdline).split())
        lines += ["insmod http", "menuentry 'xcp-provision install' {",
                  f"  linux {grub_path(plan.kernel_url)} {args}".rstrip()]
        if plan.initrd_urls:
            lines.append("  initrd " + " ".join(grub_path(url) for url in plan.initrd_urls))
        lines.append("}")
    elif plan.action is BootAction.LOCAL:
        # Leaving GRUB hands control back to the firmware, which boots the next entry: the disk.
        lines += ["menuentry 'local disk' {", "  exit", "}"]
    elif plan.action is BootAction.DENY:
        lines += [f"echo {_grub_word(reason)}", f"sleep {plan.retry_seconds}", "exit"]
    else:
        lines += [f"echo {_grub_word(reason)}",
                  f"echo 'asking again in {plan.retry_seconds} s'",
                  f"sleep {plan.retry_seconds}",
                  f"configfile {_grub_word('(tftp)/' + self_path.lstrip('/'))}"]
    return "\n".join(lines) + "\n"
