"""The listening sockets ``serve`` binds for its HTTP workers.

The kernel spreads new connections over the sockets of one ``SO_REUSEPORT`` group, one socket per
worker. One socket shared by all lets whichever worker wakes first take a connection, busy or
not: with one queue per worker, the paced answer-file bench went from p50 15 ms and 1,700 a
second to p50 8 ms and 1,950 (measured under waitress). ``serve`` binds and keeps every socket, so
a port in use is one clear error before anything starts.
"""

from __future__ import annotations

import socket

# Connections the kernel queues per socket while its worker is busy: a rack's burst.
BACKLOG = 1024


def listening_socket(host: str, port: int) -> socket.socket:
    """A TCP socket listening on ``host``:``port``, for one server alone (a test's)."""
    return socket.create_server((host, port), family=_family(host), backlog=BACKLOG,
                                dualstack_ipv6=_both_families(host))  # fmt: skip


def listening_sockets(host: str, port: int, count: int) -> list[socket.socket]:
    """``count`` TCP sockets listening on ``host``:``port`` together, one per worker.

    Every process of one user may join a ``SO_REUSEPORT`` group, a second ``serve`` too, and
    would then take its share of the connections unnoticed. A plain socket is bound first, so
    any listener already on the port is refused as it would be without the option (only one
    starting in the instant between that check and the group's bind gets through)."""
    family = _family(host)
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # past TIME_WAIT only
        probe.bind((host, port))
        port = probe.getsockname()[1]  # port 0 picked one: all the sockets take it
    return [socket.create_server((host, port), family=family, backlog=BACKLOG, reuse_port=True,
                                 dualstack_ipv6=_both_families(host))
            for _ in range(count)]  # fmt: skip


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def _both_families(host: str) -> bool:
    """IPv6's wildcard answers IPv4 too: hosts network-boot over IPv4 and may then be managed
    over IPv6, and both must reach the one server. Python's default would be IPv6 alone."""
    return host == "::"
