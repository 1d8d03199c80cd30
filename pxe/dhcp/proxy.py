"""ProxyDHCP (PXE 2.1): tell PXE clients what to boot, beside the site's own DHCP server.

A rack keeps its DHCP server; we answer only the datagrams whose vendor class starts with
``PXEClient`` or ``HTTPClient``, never with an address (``yiaddr`` 0): the client merges our
offer (boot server, boot file) with the real server's (address). Port 67 answers DISCOVER with
an OFFER; port 4011 answers the REQUEST (or INFORM) that PXE clients send there for the boot
file. PXE firmware gets a TFTP loader by architecture (option 93); UEFI HTTP Boot firmware
(``HTTPClient``) gets the ``http://`` URL of the same loader on our HTTP server, with vendor
class ``HTTPClient`` in the offer, as the UEFI specification's HTTP Boot section describes, so it
needs no TFTP; the vendor class, not the architecture, says which of the two a client gets. iPXE
(user class ``iPXE``) gets the HTTP URL of ``/boot/ipxe``. Everything else is ignored: a client
that is not network-booting must never learn we exist.

Each request is answered out of the interface it came in on, and with that interface's address
as the boot server (next-server, server identifier, and the host of the URLs unless a public URL
is configured): one wildcard socket per port receives with ``IP_PKTINFO``, which names the
interface, and a broadcast answer is sent with the same ``IP_PKTINFO`` interface index, so it
leaves by that link whatever the routing table says (a default route elsewhere, or none). Which
interfaces are served is a list; by default every interface with an IPv4 address except loopback.

With ``full_dhcp`` (isolated labs only, off by default) the service is the network's DHCP
server: it leases addresses from a static range to every client and adds the boot information
for PXE clients.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import selectors
import socket
import threading
from collections.abc import Callable
from ipaddress import IPv4Address

from common import wire
from pxe.dhcp import links
from pxe.dhcp import options as opt
from pxe.dhcp.packet import BOOTREPLY, BOOTREQUEST, ZERO, DhcpPacket, MalformedPacketError
from pxe.dhcp.pool import DhcpRange, LeasePool
from pxe.tftp.loaders import (
    ARCH_BIOS,
    ARCH_EBC,
    ARCH_X64_UEFI,
    ARCH_X64_UEFI_HTTP,
)
from pxe.udp_buffers import deepen_receive_buffer

log = logging.getLogger(__name__)

DEFAULT_LOADERS = {ARCH_BIOS: "undionly.kpxe", ARCH_X64_UEFI: "snponly.efi",
                   ARCH_EBC: "snponly.efi"}
# UEFI HTTP Boot fetches the same x86-64 loader over HTTP (``/loaders/<name>``).
DEFAULT_HTTP_LOADERS = dict.fromkeys((ARCH_X64_UEFI_HTTP, ARCH_X64_UEFI, ARCH_EBC), "snponly.efi")
CLIENT_PORT = 68
SERVER_PORT = 67
DEFAULT_HTTP_PORT = 8080
BROADCAST = str(links.LIMITED_BROADCAST)
# Told the MAC and options of every request answered (e.g. to record the boot path); runs on
# the DHCP thread, so it must not block.
AnswerHook = Callable[[str, dict[int, bytes], int], None]


@dataclasses.dataclass
class DhcpCounters:
    answered: int = 0
    ignored: int = 0  # well-formed but not ours to answer (non-PXE, unknown arch, ...)
    malformed: int = 0
    other_interface: int = 0  # came in on an interface we do not serve


@dataclasses.dataclass(frozen=True)
class Reply:
    packet: DhcpPacket
    summary: str  # for the one log line per answer


class ProxyDhcpService:
    """Answers PXE and UEFI HTTP Boot clients on UDP ``ports`` (67, 4011) from a thread.

    ``server_ip`` and ``http_base_url`` pin the boot server's address and the URLs' base; left
    ``None``, each request gets the address of the interface it came in on (and
    ``http://<that address>:<http_port>``), which is what a multi-homed server needs.
    ``interfaces`` lists the interfaces served; empty, every one with an IPv4 address except
    loopback.
    """

    def __init__(self, server_ip: str | None, http_base_url: str | None, *,
                 bind: str = "0.0.0.0",  # noqa: S104
                 interfaces: tuple[str, ...] = (), interface: str | None = None,
                 http_port: int = DEFAULT_HTTP_PORT, ports: tuple[int, int] = (67, 4011),
                 loaders: dict[int, str] | None = None,
                 http_loaders: dict[int, str] | None = None,
                 full_dhcp: DhcpRange | None = None,
                 on_answer: AnswerHook | None = None) -> None:
        self.server_ip = IPv4Address(server_ip) if server_ip else None
        self.http_base_url = http_base_url.rstrip("/") if http_base_url else None
        self.http_port = http_port
        self.bind = bind
        # ``interface`` is the older, single-interface spelling of ``interfaces``.
        self.interfaces = tuple(dict.fromkeys((*interfaces, *((interface,) if interface else ()))))
        self.requested_ports = ports
        self.loaders = dict(DEFAULT_LOADERS if loaders is None else loaders)
        self.http_loaders = dict(DEFAULT_HTTP_LOADERS if http_loaders is None else http_loaders)
        self.pool = LeasePool(full_dhcp, server_ip=self.server_ip) if full_dhcp else None
        self.on_answer = on_answer
        self.counters = DhcpCounters()
        self._dhcp_sock: socket.socket | None = None
        self._pxe_sock: socket.socket | None = None
        self._wake_r, self._wake_w = os.pipe()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def ports(self) -> tuple[int, int]:
        if self._dhcp_sock is None or self._pxe_sock is None:
            raise RuntimeError("ProxyDhcpService.ports is known only after start()")
        return self._dhcp_sock.getsockname()[1], self._pxe_sock.getsockname()[1]

    def start(self) -> None:
        links.check_interfaces(self.interfaces)
        self._dhcp_sock = self._socket(self.requested_ports[0])
        self._pxe_sock = self._socket(self.requested_ports[1])
        self._thread = threading.Thread(target=self._serve, name="proxydhcp", daemon=True)
        self._thread.start()
        mode = "full DHCP" if self.pool else "ProxyDHCP"
        served = (", ".join(self.interfaces) if self.interfaces
                  else "every interface with an IPv4 address but loopback")
        log.info("%s answering on %s:%s (%s)", mode, self.bind, self.ports, served)

    def stop(self) -> None:
        self._stopping.set()
        os.write(self._wake_w, b"x")
        if self._thread is not None:
            self._thread.join(timeout=5)
        for sock in (self._dhcp_sock, self._pxe_sock):
            if sock is not None:
                sock.close()
        os.close(self._wake_r)
        os.close(self._wake_w)

    def _socket(self, port: int) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
            deepen_receive_buffer(sock)
            links.enable_pktinfo(sock)
            sock.bind((self.bind, port))
        except OSError:
            sock.close()
            raise
        return sock

    def _serve(self) -> None:
        with selectors.DefaultSelector() as selector:
            selector.register(self._dhcp_sock, selectors.EVENT_READ, "dhcp")
            selector.register(self._pxe_sock, selectors.EVENT_READ, "pxe")
            selector.register(self._wake_r, selectors.EVENT_READ, None)
            while not self._stopping.is_set():
                for key, _ in selector.select():
                    if key.data is None:
                        continue
                    try:
                        self._receive(key.fileobj, on_pxe_port=key.data == "pxe")
                    except Exception:  # a bug must cost one datagram, never the service
                        log.exception("DHCP datagram handling failed")

    def _receive(self, sock: socket.socket, *, on_pxe_port: bool) -> None:
        try:
            data, source, arrival = links.receive(sock)
        except OSError:
            return
        try:
            request = DhcpPacket.decode(data)
        except MalformedPacketError as exc:
            self.counters.malformed += 1
            log.debug("dropped a datagram from %s:%d: %s", *source, exc)
            return
        local = self._local_address(arrival, request, on_pxe_port=on_pxe_port)
        if local is None:
            self.counters.other_interface += 1
            return
        reply = self.reply_for(request, on_pxe_port=on_pxe_port, local=local)
        if reply is None:
            self.counters.ignored += 1
            return
        destination = source if on_pxe_port else self._destination(request)
        # A broadcast leaves by the interface the request came in on; a unicast by the routes
        # (a relay agent or a client with an address may be behind a router).
        ifindex = arrival.ifindex if destination[0] == BROADCAST else 0
        try:
            links.send(sock, reply.packet.encode(), destination, ifindex=ifindex, source=local)
        except OSError as exc:
            log.warning("could not answer %s at %s:%d: %s", request.mac, *destination, exc)
            return
        self.counters.answered += 1
        log.info("dhcp %s to %s", reply.summary, request.mac)
        if self.on_answer is not None:
            self.on_answer(request.mac, request.options, request.xid)

    def _local_address(self, arrival: links.Arrival, request: DhcpPacket, *,
                       on_pxe_port: bool) -> IPv4Address | None:
        """Our address on the network the request came from; ``None``: not ours to serve."""
        name = links.interface_name(arrival.ifindex)
        if name is None:
            return None
        if self.interfaces:
            if name not in self.interfaces:
                return None
        elif name == "lo":
            return None
        unicast = arrival.destination != links.LIMITED_BROADCAST
        if unicast and (on_pxe_port or request.giaddr != ZERO):
            return arrival.destination  # sent to one of our addresses: answer from it
        return links.interface_address(name)

    @staticmethod
    def _destination(request: DhcpPacket) -> tuple[str, int]:
        if request.giaddr != ZERO:
            return str(request.giaddr), SERVER_PORT  # through the relay agent
        if request.ciaddr != ZERO:
            return str(request.ciaddr), CLIENT_PORT
        return BROADCAST, CLIENT_PORT  # no address yet: broadcast on the link

    def reply_for(self, request: DhcpPacket, *, on_pxe_port: bool,
                  local: IPv4Address | None = None) -> Reply | None:
        """The answer to one request, or ``None`` to stay silent. No I/O.

        ``local``: our address on the network the request came from."""
        server = self.server_ip or local
        if request.op != BOOTREQUEST or server is None:
            return None
        kind = request.message_type
        if on_pxe_port:
            if kind in (opt.REQUEST, opt.INFORM) and opt.is_pxe_client(request.options):
                return self._boot_reply(request, opt.ACK, server)
            return None
        if self.pool is not None:
            # Leases only on the range's own network, and never the server's own address.
            ours = server in self.pool.range.network and server not in self.pool.range
            return self._full_dhcp(request, kind, server) if ours else None
        booting = opt.is_pxe_client(request.options) or opt.is_http_client(request.options)
        if kind == opt.DISCOVER and booting:
            return self._boot_reply(request, opt.OFFER, server)
        return None

    def _boot_reply(self, request: DhcpPacket, kind: int, server: IPv4Address,
                    address: IPv4Address = ZERO) -> Reply | None:
        pxe = opt.pxe_request(request.options)
        http = opt.is_http_client(request.options)
        base = self.http_base_url or f"http://{server}:{self.http_port}"
        loader = (self.http_loaders if http else self.loaders).get(pxe.arch)
        if pxe.is_ipxe:
            filename = wire.boot_ipxe_url(base)
        elif loader is None:
            log.info("no %s loader for client architecture %d (%s): not answering",
                     "HTTP" if http else "TFTP", pxe.arch, request.mac)
            return None
        else:
            filename = wire.loader_url(base, loader) if http else loader
        reply = self._reply(request, kind, address, server)
        encoded = filename.encode()
        reply.file = encoded if len(encoded) <= 127 else b""
        reply.options[opt.BOOTFILE] = encoded
        if http:
            # UEFI HTTP Boot: the URL and the vendor class are the whole boot information.
            reply.options[opt.VENDOR_CLASS] = opt.HTTP_CLIENT
        else:
            reply.options[opt.TFTP_SERVER] = str(server).encode()
            reply.options[opt.VENDOR_CLASS] = opt.PXE_CLIENT
            reply.options[opt.VENDOR_SPECIFIC] = opt.pxe_vendor_options()
            if pxe.uuid is not None:
                reply.options[opt.CLIENT_UUID] = pxe.uuid  # PXE 2.1: echo the client's UUID
        name = {opt.OFFER: "OFFER", opt.ACK: "ACK"}[kind]
        return Reply(reply, f"{name} arch {pxe.arch} {'URL' if http else 'file'} {filename}")

    def _reply(self, request: DhcpPacket, kind: int, address: IPv4Address,
               server: IPv4Address) -> DhcpPacket:
        return DhcpPacket(
            op=BOOTREPLY, xid=request.xid, chaddr=request.chaddr, htype=request.htype,
            flags=request.flags, ciaddr=request.ciaddr, yiaddr=address,
            siaddr=server, giaddr=request.giaddr,
            options={opt.MESSAGE_TYPE: bytes([kind]), opt.SERVER_ID: server.packed},
        )

    def _full_dhcp(self, request: DhcpPacket, kind: int | None,
                   server: IPv4Address) -> Reply | None:
        pool = self.pool
        assert pool is not None
        requested = request.options.get(opt.REQUESTED_IP)
        wanted = IPv4Address(requested) if requested and len(requested) == 4 else None
        if kind == opt.DISCOVER:
            address = pool.offer(request.mac, wanted)
            return None if address is None else self._lease_reply(request, opt.OFFER, address,
                                                                  server)
        if kind == opt.REQUEST:
            server_id = request.options.get(opt.SERVER_ID)
            if server_id is not None and server_id != server.packed:
                pool.release(request.mac)  # the client chose another server's offer
                return None
            address = wanted or (request.ciaddr if request.ciaddr != ZERO else None)
            if address is not None and pool.bind(request.mac, address):
                return self._lease_reply(request, opt.ACK, address, server)
            nak = self._reply(request, opt.NAK, ZERO, server)
            nak.siaddr = ZERO
            return Reply(nak, f"NAK for {address}")
        if kind in (opt.RELEASE, opt.DECLINE):
            pool.release(request.mac)
        return None

    def _lease_reply(self, request: DhcpPacket, kind: int, address: IPv4Address,
                     server: IPv4Address) -> Reply:
        lease = self.pool.range if self.pool else None
        assert lease is not None
        reply = None
        if opt.is_pxe_client(request.options) or opt.is_http_client(request.options):
            boot = self._boot_reply(request, kind, server, address)
            reply = boot.packet if boot else None
        if reply is None:
            reply = self._reply(request, kind, address, server)
        reply.options[opt.SUBNET_MASK] = lease.netmask.packed
        reply.options[opt.LEASE_TIME] = lease.lease_seconds.to_bytes(4, "big")
        if lease.router is not None:
            reply.options[opt.ROUTER] = lease.router.packed
        if lease.dns:
            reply.options[opt.DNS_SERVERS] = b"".join(dns.packed for dns in lease.dns)
        name = {opt.OFFER: "OFFER", opt.ACK: "ACK"}[kind]
        with contextlib.suppress(KeyError):
            name += f" file {reply.options[opt.BOOTFILE].decode()}"
        return Reply(reply, f"{name} lease {address}")
