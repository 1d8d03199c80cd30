"""Network namespaces for tests: two joined by a veth pair, and a thread that runs inside one.

Code run by :func:`in_netns` creates its sockets, threads and child processes in the namespace,
so a real server (``serve``, ``named``) started from there listens on the namespace's link only.
Namespaces are deleted on exit even when the test fails; their processes are the caller's to
stop first.
"""

from __future__ import annotations

import ctypes
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TypeVar

from common.runner import run

CLONE_NEWNET = 0x40000000
T = TypeVar("T")


@dataclass(frozen=True)
class Link:
    """A server namespace and a host namespace, one end of the veth pair in each."""

    server_ns: str
    host_ns: str
    server_if: str
    host_if: str


@contextmanager
def veth_link(tag: str, *, host_if: str = "eth0", host_mac: str | None = None) -> Iterator[Link]:
    """Both namespaces with loopback and the link up and no address on the link: the caller
    chooses the family. ``host_if`` is the host end's name, as a NIC's in dom0."""
    link = Link(f"{tag}-srv", f"{tag}-host", f"{tag}s", host_if)
    try:
        run(["ip", "netns", "add", link.server_ns])
        run(["ip", "netns", "add", link.host_ns])
        run(["ip", "link", "add", link.server_if, "netns", link.server_ns, "type", "veth",
             "peer", "name", link.host_if, "netns", link.host_ns])  # fmt: skip
        if host_mac:
            run(["ip", "-n", link.host_ns, "link", "set", link.host_if, "address", host_mac])
        for ns, ifname in ((link.server_ns, link.server_if), (link.host_ns, link.host_if)):
            run(["ip", "-n", ns, "link", "set", ifname, "up"])
            run(["ip", "-n", ns, "link", "set", "lo", "up"])
        yield link
    finally:
        for ns in (link.server_ns, link.host_ns):
            run(["ip", "netns", "del", ns], check=False)


def ipv4_link(link: Link, server_cidr: str, host_cidr: str) -> Link:
    """``link`` with an IPv4 address on each end (``10.99.0.1/24``...); they go with the link."""
    for ns, ifname, cidr in ((link.server_ns, link.server_if, server_cidr),
                             (link.host_ns, link.host_if, host_cidr)):  # fmt: skip
        run(["ip", "-n", ns, "addr", "add", cidr, "dev", ifname])
    return link


@contextmanager
def address(ns: str, ifname: str, cidr: str, *, dad: bool = False) -> Iterator[str]:
    """The IPv6 ``cidr`` on ``ifname`` in ``ns`` for the block; yields the address without its
    prefix. Usable at once, unless ``dad``: then tentative until duplicate address detection
    is done, as on a booting host."""
    run(["ip", "-n", ns, "addr", "add", cidr, "dev", ifname, *([] if dad else ["nodad"])])
    try:
        yield cidr.split("/", maxsplit=1)[0]
    finally:
        run(["ip", "-n", ns, "addr", "del", cidr, "dev", ifname], check=False)


def in_netns(ns: str, action: Callable[[], T]) -> T:
    """Run ``action`` in a thread that entered ``ns``; threads it starts stay there too."""
    result: list[T] = []
    errors: list[BaseException] = []

    def enter_and_run() -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        fd = os.open(f"/run/netns/{ns}", os.O_RDONLY)
        try:
            if libc.setns(fd, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), f"setns into {ns} failed")
            result.append(action())
        except BaseException as exc:
            errors.append(exc)
        finally:
            os.close(fd)

    thread = threading.Thread(target=enter_and_run)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
    return result[0]
