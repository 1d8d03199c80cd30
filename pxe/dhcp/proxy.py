"""ProxyDHCP (PXE 2.1): tell PXE clients what to boot, beside the site's own DHCP server.

A rack keeps its DHCP server; we answer only the datagrams whose vendor class starts with
``PXEClient``, never with an address (``yiaddr`` 0): the client merges our offer (boot server,
boot file) with the real server's (address). Port 67 answers DISCOVER with an OFFER; port 4011
answers the REQUEST (or INFORM) that PXE clients send there for the boot file. Firmware gets a
loader by architecture (option 93); iPXE (user class ``iPXE``) gets the HTTP URL of
``/boot/ipxe``, so only the loader itself ever travels over TFTP. Everything else is ignored:
a non-PXE client must never learn we exist.

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
from ipaddress import IPv4Address

from common import wire
from pxe.dhcp import options as opt
from pxe.dhcp.packet import BOOTREPLY, BOOTREQUEST, ZERO, DhcpPacket, MalformedPacketError
from pxe.dhcp.pool import DhcpRange, LeasePool
from pxe.tftp.loaders import ARCH_BIOS, ARCH_EBC, ARCH_X64_UEFI

log = logging.getLogger(__name__)

DEFAULT_LOADERS = {ARCH_BIOS: "undionly.kpxe", ARCH_X64_UEFI: "snponly.efi",
                   ARCH_EBC: "snponly.efi"}
CLIENT_PORT = 68
SERVER_PORT = 67


@dataclasses.dataclass
class DhcpCounters:
    answered: int = 0
    ignored: int = 0  # well-formed but not ours to answer (non-PXE, unknown arch, ...)
    malformed: int = 0


@dataclasses.dataclass(frozen=True)
class Reply:
    packet: DhcpPacket
    summary: str  # for the one log line per answer


class ProxyDhcpService:
    """Answers PXE clients on UDP ``ports`` (67, 4011) from a background thread."""

    def __init__(self, server_ip: str, http_base_url: str, *, bind: str = "0.0.0.0",  # noqa: S104
                 interface: str | None = None, ports: tuple[int, int] = (67, 4011),
                 loaders: dict[int, str] | None = None,
                 full_dhcp: DhcpRange | None = None) -> None:
        self.server_ip = IPv4Address(server_ip)
        self.boot_url = wire.boot_ipxe_url(http_base_url)
        self.bind = bind
        self.interface = interface
        self.requested_ports = ports
        self.loaders = dict(DEFAULT_LOADERS if loaders is None else loaders)
        self.pool = LeasePool(full_dhcp, server_ip=self.server_ip) if full_dhcp else None
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
        self._dhcp_sock = self._socket(self.requested_ports[0])
        self._pxe_sock = self._socket(self.requested_ports[1])
        self._thread = threading.Thread(target=self._serve, name="proxydhcp", daemon=True)
        self._thread.start()
        mode = "full DHCP" if self.pool else "ProxyDHCP"
        log.info("%s answering on %s:%s%s", mode, self.bind, self.ports,
                 f" ({self.interface})" if self.interface else "")

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
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        if self.interface:
            # Receive and broadcast on this link only, whatever the routing table says.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, self.interface.encode())
        sock.bind((self.bind, port))
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
            data, source = sock.recvfrom(4096)
        except OSError:
            return
        try:
            request = DhcpPacket.decode(data)
        except MalformedPacketError as exc:
            self.counters.malformed += 1
            log.debug("dropped a datagram from %s:%d: %s", *source, exc)
            return
        reply = self.reply_for(request, on_pxe_port=on_pxe_port)
        if reply is None:
            self.counters.ignored += 1
            return
        destination = source if on_pxe_port else self._destination(request)
        try:
            sock.sendto(reply.packet.encode(), destination)
        except OSError as exc:
            log.warning("could not answer %s at %s:%d: %s", request.mac, *destination, exc)
            return
        self.counters.answered += 1
        log.info("dhcp %s to %s", reply.summary, request.mac)

    @staticmethod
    def _destination(request: DhcpPacket) -> tuple[str, int]:
        if request.giaddr != ZERO:
            return str(request.giaddr), SERVER_PORT  # through the relay agent
        if request.ciaddr != ZERO:
            return str(request.ciaddr), CLIENT_PORT
        return "255.255.255.255", CLIENT_PORT  # no address yet: broadcast on the link

    def reply_for(self, request: DhcpPacket, *, on_pxe_port: bool) -> Reply | None:
        """The answer to one request, or ``None`` to stay silent. No I/O."""
        if request.op != BOOTREQUEST:
            return None
        kind = request.message_type
        if on_pxe_port:
            if kind in (opt.REQUEST, opt.INFORM) and opt.is_pxe_client(request.options):
                return self._boot_reply(request, opt.ACK)
            return None
        if self.pool is not None:
            return self._full_dhcp(request, kind)
        if kind == opt.DISCOVER and opt.is_pxe_client(request.options):
            return self._boot_reply(request, opt.OFFER)
        return None

    def _boot_reply(self, request: DhcpPacket, kind: int,
                    address: IPv4Address = ZERO) -> Reply | None:
        pxe = opt.pxe_request(request.options)
        if pxe.is_ipxe:
            filename = self.boot_url
        elif pxe.arch in self.loaders:
            filename = self.loaders[pxe.arch]
        else:
            log.info("no loader for client architecture %d (%s): not answering",
                     pxe.arch, request.mac)
            return None
        reply = self._reply(request, kind, address)
        encoded = filename.encode()
        reply.file = encoded if len(encoded) <= 127 else b""
        reply.options[opt.BOOTFILE] = encoded
        reply.options[opt.TFTP_SERVER] = str(self.server_ip).encode()
        reply.options[opt.VENDOR_CLASS] = opt.PXE_CLIENT
        reply.options[opt.VENDOR_SPECIFIC] = opt.pxe_vendor_options()
        if pxe.uuid is not None:
            reply.options[opt.CLIENT_UUID] = pxe.uuid  # PXE 2.1: echo the client's UUID
        name = {opt.OFFER: "OFFER", opt.ACK: "ACK"}[kind]
        return Reply(reply, f"{name} arch {pxe.arch} file {filename}")

    def _reply(self, request: DhcpPacket, kind: int, address: IPv4Address) -> DhcpPacket:
        return DhcpPacket(
            op=BOOTREPLY, xid=request.xid, chaddr=request.chaddr, htype=request.htype,
            flags=request.flags, ciaddr=request.ciaddr, yiaddr=address,
            siaddr=self.server_ip, giaddr=request.giaddr,
            options={opt.MESSAGE_TYPE: bytes([kind]), opt.SERVER_ID: self.server_ip.packed},
        )

    def _full_dhcp(self, request: DhcpPacket, kind: int | None) -> Reply | None:
        pool = self.pool
        assert pool is not None
        requested = request.options.get(opt.REQUESTED_IP)
        wanted = IPv4Address(requested) if requested and len(requested) == 4 else None
        if kind == opt.DISCOVER:
            address = pool.offer(request.mac, wanted)
            return None if address is None else self._lease_reply(request, opt.OFFER, address)
        if kind == opt.REQUEST:
            server_id = request.options.get(opt.SERVER_ID)
            if server_id is not None and server_id != self.server_ip.packed:
                pool.release(request.mac)  # the client chose another server's offer
                return None
            address = wanted or (request.ciaddr if request.ciaddr != ZERO else None)
            if address is not None and pool.bind(request.mac, address):
                return self._lease_reply(request, opt.ACK, address)
            nak = self._reply(request, opt.NAK, ZERO)
            nak.siaddr = ZERO
            return Reply(nak, f"NAK for {address}")
        if kind in (opt.RELEASE, opt.DECLINE):
            pool.release(request.mac)
        return None

    def _lease_reply(self, request: DhcpPacket, kind: int, address: IPv4Address) -> Reply:
        lease = self.pool.range if self.pool else None
        assert lease is not None
        reply = None
        if opt.is_pxe_client(request.options):
            boot = self._boot_reply(request, kind, address)
            reply = boot.packet if boot else None
        if reply is None:
            reply = self._reply(request, kind, address)
        reply.options[opt.SUBNET_MASK] = lease.netmask.packed
        reply.options[opt.LEASE_TIME] = lease.lease_seconds.to_bytes(4, "big")
        if lease.router is not None:
            reply.options[opt.ROUTER] = lease.router.packed
        if lease.dns:
            reply.options[opt.DNS_SERVERS] = b"".join(server.packed for server in lease.dns)
        name = {opt.OFFER: "OFFER", opt.ACK: "ACK"}[kind]
        with contextlib.suppress(KeyError):
            name += f" file {reply.options[opt.BOOTFILE].decode()}"
        return Reply(reply, f"{name} lease {address}")
