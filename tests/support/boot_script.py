"""A boot script of ``serve`` (iPXE, pxelinux or GRUB) read as the installer it boots reads it:
the kernel's arguments through the installer's own command-line parser, so a test of the server
also checks that the installer finds what the server meant it to."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from installer.cmdline import BootArgs, parse_cmdline

# Each loader's line that boots a kernel with arguments, and whether the kernel's path comes
# before them on that line.
_KERNEL_LINES = {"kernel": True, "linux": True, "APPEND": False}  # iPXE, GRUB, pxelinux


def installer_args(script: str) -> BootArgs | None:
    """The installer's words on the script's kernel line; None when the script boots no kernel
    (a wait, a local boot)."""
    for line in script.splitlines():
        word, _, rest = line.strip().partition(" ")
        if word in _KERNEL_LINES:
            rest = rest.split(" || ")[0]  # iPXE's way out when the download fails
            if _KERNEL_LINES[word]:
                rest = rest.partition(" ")[2]
            return parse_cmdline(rest)
    return None


def answer_file_url(script: str) -> str | None:
    """The answer file's URL the installer is given, or None when the script installs nothing."""
    args = installer_args(script)
    return args.answerfile if args is not None else None


def answer_file_path(script: str) -> str:
    """The answer file's path and query, as a test client of the app asks for it."""
    url = answer_file_url(script)
    assert url, f"the boot script installs nothing:\n{script}"
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def install_token(url: str) -> str:
    """The install token an answer file's URL (or path) carries."""
    [token] = parse_qs(urlsplit(url).query)["token"]
    return token
