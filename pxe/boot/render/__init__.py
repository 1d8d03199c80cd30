"""A BootPlan in each boot loader's dialect: iPXE, pxelinux, GRUB.

Renderers only translate; they never decide. What they cannot express safely (a newline that
would start a config line of its own, a URL the loader cannot fetch) is refused, never mangled.
"""

from __future__ import annotations


class UnrenderablePlanError(ValueError):
    """A BootPlan that a loader's syntax cannot express (a newline, a non-HTTP URL)."""

    def __init__(self, loader: str, why: str) -> None:
        super().__init__(f"cannot render this boot plan as a {loader} config: {why}")


def one_line(loader: str, text: str) -> str:
    """``text`` unchanged, or UnrenderablePlanError when it would span several config lines."""
    if "\n" in text or "\r" in text:
        raise UnrenderablePlanError(loader, f"{text!r} spans several lines")
    return text
