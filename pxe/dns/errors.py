"""Typed DNS errors: each names the server and the zone, and reads as one sentence.

Registration records these as reasons and events rather than failing: a host that installed
fine is still a member of its pool when its DNS name is taken by someone else.
"""

from __future__ import annotations


class DnsError(Exception):
    """Base of every DNS problem the server reports."""


class DnsSettingsError(DnsError):
    """The ``[dns]`` settings are incomplete or the TSIG secret cannot be used."""


class DnsServerError(DnsError):
    """Something about one update to one zone on one server."""

    def __init__(self, server: str, zone: str, detail: str) -> None:
        self.server = server
        self.zone = zone
        self.detail = detail
        super().__init__(f"DNS server {server}, zone {zone}: {detail}")


class DnsNameError(DnsServerError):
    """The host's name or address does not fall in the configured zone."""


class DnsUnreachableError(DnsServerError):
    """No answer: the server is down, filtered, or on another port."""


class DnsRefusedError(DnsServerError):
    """The server answered the update with an error rcode (REFUSED, NOTAUTH, NOTZONE...)."""

    def __init__(self, server: str, zone: str, rcode: str, what: str) -> None:
        self.rcode = rcode
        super().__init__(server, zone, f"{what} refused with rcode {rcode}")


class DnsAuthError(DnsServerError):
    """The server rejected our TSIG signature: wrong secret, unknown key name, or clock skew."""

    def __init__(self, server: str, zone: str, key_name: str, tsig_error: str) -> None:
        self.key_name = key_name
        self.tsig_error = tsig_error
        super().__init__(
            server, zone, f"TSIG key {key_name} rejected ({tsig_error}); check the key and secret"
        )


class DnsConflictError(DnsServerError):
    """A different record already holds the name; we never overwrite it."""

    def __init__(
        self, server: str, zone: str, *, name: str, rdtype: str, wanted: str, existing: list[str]
    ) -> None:
        self.name = name
        self.rdtype = rdtype
        self.wanted = wanted
        self.existing = list(existing)
        held = " and ".join(existing) if existing else "a different record"
        super().__init__(
            server,
            zone,
            f"{name} already has {held}, not the wanted {rdtype} {wanted}; left unchanged",
        )
