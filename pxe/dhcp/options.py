"""DHCP option codes and the PXE-specific values a ProxyDHCP server reads and writes.

Codes from RFC 2132 (DHCP), RFC 4578 (PXE client options), the PXE 2.1 specification
(vendor-encapsulated option 43 sub-options) and the UEFI specification's HTTP Boot section
(vendor class ``HTTPClient``, a URL as the boot file).
"""

from __future__ import annotations

from dataclasses import dataclass

PAD = 0
SUBNET_MASK = 1
ROUTER = 3
DNS_SERVERS = 6
HOSTNAME = 12
VENDOR_SPECIFIC = 43  # PXE sub-options when option 60 is PXEClient
REQUESTED_IP = 50
LEASE_TIME = 51
OVERLOAD = 52
MESSAGE_TYPE = 53
SERVER_ID = 54
PARAMETER_LIST = 55
VENDOR_CLASS = 60
TFTP_SERVER = 66
BOOTFILE = 67
USER_CLASS = 77
CLIENT_ARCH = 93
CLIENT_NDI = 94
CLIENT_UUID = 97
END = 255

DISCOVER, OFFER, REQUEST, DECLINE, ACK, NAK, RELEASE, INFORM = range(1, 9)

PXE_CLIENT = b"PXEClient"
HTTP_CLIENT = b"HTTPClient"
# PXE 2.1 sub-option 6 (discovery control), bit 3: boot the file named in this offer,
# no boot-server discovery and no menu.
PXE_DISCOVERY_CONTROL = 6
PXE_BOOT_FILE_ONLY = 0x08


@dataclass(frozen=True)
class PxeRequest:
    """What a PXE client told us about itself, from its DHCP options."""

    arch: int  # RFC 4578 client system architecture
    is_ipxe: bool  # iPXE already runs: hand it HTTP, not another loader
    uuid: bytes | None


def is_pxe_client(options: dict[int, bytes]) -> bool:
    return options.get(VENDOR_CLASS, b"").startswith(PXE_CLIENT)


def is_http_client(options: dict[int, bytes]) -> bool:
    """A UEFI HTTP Boot client: it wants a URL, not a TFTP file name."""
    return options.get(VENDOR_CLASS, b"").startswith(HTTP_CLIENT)


def client_arch(options: dict[int, bytes]) -> int:
    """Option 93 if present, else the ``Arch:xxxxx`` field of option 60, else BIOS.

    PXE 2.0 ROMs predate option 93 and are all BIOS; some firmwares send only option 60.
    """
    arch = options.get(CLIENT_ARCH, b"")
    if len(arch) >= 2:
        return int.from_bytes(arch[:2], "big")
    fields = options.get(VENDOR_CLASS, b"").split(b":")
    if len(fields) >= 3 and fields[1] == b"Arch" and fields[2].isdigit():
        return int(fields[2])
    return 0


def is_ipxe(options: dict[int, bytes]) -> bool:
    """iPXE sends user class ``iPXE``, raw or RFC 3004 length-prefixed."""
    user_class = options.get(USER_CLASS, b"")
    return user_class in (b"iPXE", b"\x04iPXE")


def pxe_request(options: dict[int, bytes]) -> PxeRequest:
    uuid = options.get(CLIENT_UUID)
    return PxeRequest(client_arch(options), is_ipxe(options), uuid)


def pxe_vendor_options() -> bytes:
    """Option 43 for a PXEClient reply: boot the offered file, skip discovery and menus."""
    return bytes([PXE_DISCOVERY_CONTROL, 1, PXE_BOOT_FILE_ONLY, END])
