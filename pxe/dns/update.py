"""A host's forward and reverse records, kept by RFC 2136 dynamic updates signed with TSIG.

Every change carries prerequisites, so the server itself decides atomically whether the name is
free: we add a record only where none of its type (and no CNAME) exists, accept one that already
says exactly what we want, and report anything else as a conflict instead of overwriting a record
someone else owns. Deletes name the exact record, so they never remove a neighbour's data.
"""

from __future__ import annotations

import contextlib
import ipaddress
from dataclasses import dataclass
from enum import StrEnum

import dns.exception
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype
import dns.reversename
import dns.tsig
import dns.update

from common import wire
from pxe.dns.errors import (
    DnsAuthError,
    DnsConflictError,
    DnsNameError,
    DnsRefusedError,
    DnsServerError,
    DnsUnreachableError,
)
from pxe.dns.settings import DnsSettings

_PEER_TSIG_ERRORS = {
    dns.tsig.PeerBadKey: "BADKEY",
    dns.tsig.PeerBadSignature: "BADSIG",
    dns.tsig.PeerBadTime: "BADTIME",
    dns.tsig.PeerBadTruncation: "BADTRUNC",
}


class RecordStatus(StrEnum):
    ADDED = "added"
    PRESENT = "present"  # already there with our value: a re-registration changes nothing


@dataclass(frozen=True)
class Record:
    zone: str
    name: str
    rdtype: str
    value: str

    def __str__(self) -> str:
        return f"{self.name} {self.rdtype} {self.value}"


@dataclass(frozen=True)
class HostDnsResult:
    """What one registration did in DNS; conflicts are results here, not exceptions."""

    done: tuple[tuple[Record, RecordStatus], ...] = ()
    # Conflicts, and a reverse record no configured reverse zone holds.
    problems: tuple[DnsServerError, ...] = ()
    # Records not attempted because an earlier conflict made them wrong (a PTR to a name that
    # points elsewhere).
    skipped: tuple[Record, ...] = ()


class DnsUpdater:
    def __init__(self, settings: DnsSettings) -> None:
        self.settings = settings

    @property
    def server(self) -> str:
        return wire.authority(self.settings.server, self.settings.port)

    def forward_record(self, hostname: str, address: str) -> Record:
        """The A (or AAAA) record of ``hostname`` at ``address``.

        A single-label hostname is taken relative to the forward zone; a dotted one must lie in
        it, so a typo never lands a record in a zone nobody expects.
        """
        forward_zone = dns.name.from_text(self.settings.forward_zone)
        ip = ipaddress.ip_interface(address).ip
        bare = hostname.rstrip(".")
        if "." in bare:
            name = dns.name.from_text(bare + ".")
            if not name.is_subdomain(forward_zone):
                raise DnsNameError(
                    self.server,
                    self.settings.forward_zone,
                    f"host name {hostname} is outside the forward zone",
                )
        else:
            name = dns.name.from_text(bare, origin=forward_zone)
        rdtype = "A" if ip.version == 4 else "AAAA"
        return Record(self.settings.forward_zone, name.to_text(), rdtype, str(ip))

    def reverse_record(self, forward: Record) -> Record:
        """The PTR record pointing ``forward``'s address back at its name, in the reverse zone
        that holds the address (in-addr.arpa for an A, ip6.arpa for an AAAA)."""
        reverse = dns.reversename.from_address(forward.value)
        zone = self.settings.reverse_zone_for(reverse)
        if zone is None:
            family = "ip6.arpa" if forward.rdtype == "AAAA" else "in-addr.arpa"
            raise DnsNameError(
                self.server,
                ", ".join(self.settings.reverse_zones),
                f"address {forward.value} is outside every reverse zone; add the {family} "
                "zone holding it to dns_reverse_zones",
            )
        return Record(zone, reverse.to_text(), "PTR", forward.name)

    def add_host(self, hostname: str, address: str) -> HostDnsResult:
        """Ensure the host's forward then reverse record.

        A conflict, or an address outside every reverse zone, is reported in the result; the
        forward record stays, since it is correct on its own. A forward conflict skips the PTR,
        which would point at a name that resolves elsewhere.
        """
        forward = self.forward_record(hostname, address)
        try:
            forward_status = self.ensure(forward)
        except DnsConflictError as conflict:
            skipped: tuple[Record, ...] = ()
            with contextlib.suppress(DnsNameError):
                skipped = (self.reverse_record(forward),)
            return HostDnsResult(problems=(conflict,), skipped=skipped)
        done = ((forward, forward_status),)
        try:
            reverse = self.reverse_record(forward)
            return HostDnsResult(done=(*done, (reverse, self.ensure(reverse))))
        except (DnsConflictError, DnsNameError) as problem:
            return HostDnsResult(done=done, problems=(problem,))

    def remove_host(self, hostname: str, address: str) -> None:
        """Delete exactly the host's records; other values at the same names stay."""
        forward = self.forward_record(hostname, address)
        self.remove(forward)
        with contextlib.suppress(DnsNameError):
            self.remove(self.reverse_record(forward))

    def ensure(self, record: Record) -> RecordStatus:
        """Add ``record`` if its name holds nothing of its type, accept it if already there.

        Raises :class:`DnsConflictError` when the name holds anything else.
        """
        add = self._message(record.zone)
        add.absent(record.name, record.rdtype)
        add.absent(record.name, "CNAME")
        add.add(record.name, self.settings.ttl, record.rdtype, record.value)
        rcode = self._send(add, record, "adding")
        if rcode == dns.rcode.NOERROR:
            return RecordStatus.ADDED
        if rcode != dns.rcode.YXRRSET:
            raise DnsRefusedError(
                self.server, record.zone, dns.rcode.to_text(rcode), f"adding {record}"
            )
        same = self._message(record.zone)
        same.present(record.name, record.rdtype, record.value)
        rcode = self._send(same, record, "checking")
        if rcode == dns.rcode.NOERROR:
            return RecordStatus.PRESENT
        if rcode != dns.rcode.NXRRSET:
            raise DnsRefusedError(
                self.server, record.zone, dns.rcode.to_text(rcode), f"checking {record}"
            )
        raise DnsConflictError(
            self.server,
            record.zone,
            name=record.name,
            rdtype=record.rdtype,
            wanted=record.value,
            existing=self._held(record),
        )

    def remove(self, record: Record) -> None:
        delete = self._message(record.zone)
        delete.delete(record.name, record.rdtype, record.value)
        rcode = self._send(delete, record, "deleting")
        if rcode != dns.rcode.NOERROR:
            raise DnsRefusedError(
                self.server, record.zone, dns.rcode.to_text(rcode), f"deleting {record}"
            )

    def _message(self, zone: str) -> dns.update.UpdateMessage:
        return dns.update.UpdateMessage(zone, keyring=self.settings.tsig_key())

    def _send(self, message: dns.message.Message, record: Record, what: str) -> int:
        settings = self.settings
        try:
            response = dns.query.tcp(
                message, settings.server, port=settings.port, timeout=settings.timeout
            )
        except dns.tsig.PeerError as exc:
            tsig_error = _PEER_TSIG_ERRORS.get(type(exc), type(exc).__name__)
            raise DnsAuthError(self.server, record.zone, settings.key_name, tsig_error) from exc
        except (dns.tsig.BadSignature, dns.message.UnknownTSIGKey) as exc:
            raise DnsAuthError(
                self.server, record.zone, settings.key_name, "the reply's signature is invalid"
            ) from exc
        except (OSError, EOFError, dns.exception.Timeout) as exc:
            raise DnsUnreachableError(
                self.server, record.zone, f"no answer while {what} {record}: {exc}"
            ) from exc
        return response.rcode()

    def _held(self, record: Record) -> list[str]:
        """What the name holds now, to say what the conflict is with (best effort)."""
        query = dns.message.make_query(record.name, record.rdtype)
        try:
            response = dns.query.tcp(
                query, self.settings.server, port=self.settings.port, timeout=self.settings.timeout
            )
        except (OSError, EOFError, dns.exception.DNSException):
            return []
        wanted = dns.name.from_text(record.name)
        return [
            f"{dns.rdatatype.to_text(rrset.rdtype)} {rdata.to_text()}"
            for rrset in response.answer
            if rrset.name == wanted
            for rdata in rrset
        ]
