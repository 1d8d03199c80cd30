"""A BootPlan as a pxelinux config (``pxelinux.cfg/01-<mac>``), for sites that chain syslinux.

The kernel and initrds are HTTP URLs (everything big goes over HTTP), which only ``lpxelinux.0``
can fetch (classic ``pxelinux.0`` speaks TFTP only), so that is the pxelinux loader
:mod:`pxe.tftp.loaders` ships. WAIT shows the reason, then reboots (``reboot.c32``) to ask
again: pxelinux cannot re-read its config.
"""

from __future__ import annotations

from pxe.boot.plan import BootAction, BootPlan
from pxe.boot.render import UnrenderablePlanError, one_line


def render_pxelinux(plan: BootPlan) -> str:
    """A pxelinux config that boots ``plan`` at once, without a menu."""
    lines = [f"# xcp-provision: {one_line('pxelinux', plan.reason or plan.action.value)}",
             "PROMPT 0"]
    if plan.action is BootAction.INSTALL:
        if not plan.kernel_url:
            raise UnrenderablePlanError("pxelinux", "an INSTALL plan needs a kernel URL")
        lines += ["DEFAULT install", "LABEL install",
                  f"  KERNEL {one_line('pxelinux', plan.kernel_url)}"]
        if plan.initrd_urls:
            initrds = ",".join(one_line("pxelinux", url) for url in plan.initrd_urls)
            lines.append(f"  INITRD {initrds}")
        if plan.cmdline:
            lines.append(f"  APPEND {one_line('pxelinux', plan.cmdline)}")
    elif plan.action is BootAction.LOCAL:
        lines += ["DEFAULT local", "LABEL local", "  LOCALBOOT 0"]
    elif plan.action is BootAction.DENY:
        lines += [f"SAY {one_line('pxelinux', plan.reason)}", "DEFAULT local",
                  f"TIMEOUT {max(1, plan.retry_seconds * 10)}", "LABEL local", "  LOCALBOOT 0"]
    else:
        # TIMEOUT counts tenths of a second; the reboot brings the host back to us.
        lines += [f"SAY {one_line('pxelinux', plan.reason or 'waiting for the server')}",
                  f"SAY asking again in {plan.retry_seconds} s",
                  "DEFAULT wait", f"TIMEOUT {max(1, plan.retry_seconds * 10)}",
                  "LABEL wait", "  COM32 reboot.c32"]
    return "\n".join(lines) + "\n"
