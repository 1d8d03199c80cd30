"""What one host should boot right now, independent of how it asked.

The server decides a :class:`BootPlan` per request from the inventory; each boot protocol (an
iPXE script over HTTP, a pxelinux or GRUB file over TFTP) only renders it. That keeps the
decision in one place and makes every per-host file a computed view, never a file on disk.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class BootAction(StrEnum):
    INSTALL = "install"  # boot the release's installer with the host's answer-file URL
    LOCAL = "local"  # boot the local disk
    WAIT = "wait"  # unknown or unassigned host: wait and ask again
    DENY = "deny"  # a machine this server will not boot (discovery off): say so, hand back


@dataclass(frozen=True)
class BootPlan:
    action: BootAction
    kernel_url: str | None = None
    initrd_urls: tuple[str, ...] = ()
    cmdline: str = ""
    retry_seconds: int = 30
    # Why the server chose this plan, shown in scripts as a comment and in logs.
    reason: str = ""
    # A WAIT because every install slot is taken (max_concurrent_installs): the host is queued.
    queued: bool = False
