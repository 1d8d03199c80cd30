"""Where things live inside the dom0 root filesystem: the contract with the installer.

The installer writes the first-boot config, the network config, fstab and the hostname into the
mounted root; the image builders put the agent and its unit there. Both sides import these paths
instead of repeating strings. All are absolute paths inside dom0.
"""

from __future__ import annotations

from pathlib import Path

AGENT = "/usr/lib/xcp-provision/firstboot/agent.py"
UNIT_NAME = "xcp-provision-firstboot.service"
UNIT = f"/etc/systemd/system/{UNIT_NAME}"
# The enable symlink; the agent removes it after a successful registration.
UNIT_WANTS = f"/etc/systemd/system/multi-user.target.wants/{UNIT_NAME}"
CONFIG_DIR = "/etc/xcp-provision"
FIRSTBOOT_CONFIG = f"{CONFIG_DIR}/firstboot.json"  # written by the installer
POOL_CONFIG = f"{CONFIG_DIR}/pool.conf"  # written by the agent
POOL_JOIN_HOOK = f"{CONFIG_DIR}/hooks/pool-join"  # optional, run by the agent
DONE_MARKER = "/var/lib/xcp-provision/firstboot.done"
# The registration's answer, kept by the agent until it has disabled itself (mode 0600).
REGISTRATION_ANSWER = "/var/lib/xcp-provision/firstboot.answer.json"
# Health reports after the first boot: the agent with --report, at every boot and from a timer,
# with the report token the registration gave (written by the agent, mode 0600).
REPORT_UNIT_NAME = "xcp-provision-report.service"
REPORT_TIMER_NAME = "xcp-provision-report.timer"
REPORT_UNIT = f"/etc/systemd/system/{REPORT_UNIT_NAME}"
REPORT_TIMER = f"/etc/systemd/system/{REPORT_TIMER_NAME}"
REPORT_UNIT_WANTS = f"/etc/systemd/system/multi-user.target.wants/{REPORT_UNIT_NAME}"
REPORT_TIMER_WANTS = f"/etc/systemd/system/timers.target.wants/{REPORT_TIMER_NAME}"
REPORT_CONFIG = f"{CONFIG_DIR}/report.json"
RELEASE_FILE = f"{CONFIG_DIR}/release"  # our release name, one line

# Networking in dom0 is ifupdown (+ isc-dhcp-client). /etc/network/interfaces sources the
# directory below; the installer writes one stanza file there for the management interface.
# Interfaces keep their kernel names (eth0, eth1...) because the image masks udev's
# predictable-naming policy: the installer's initramfs has no udev and sees the same names.
NETWORK_INTERFACES = "/etc/network/interfaces"
NETWORK_INTERFACES_DIR = "/etc/network/interfaces.d"
MANAGEMENT_INTERFACE_FILE = f"{NETWORK_INTERFACES_DIR}/management"
NAMING_POLICY_MASK = "/etc/systemd/network/99-default.link"

BASE_INTERFACES = """\
# Managed by xcp-provision: the installer writes the management interface into
# /etc/network/interfaces.d/management.
source /etc/network/interfaces.d/*

auto lo
iface lo inet loopback
"""

# ifupdown starts dhclient with -i (an RFC 4361 identifier made of a DUID), which a DHCP server
# takes for another client than the firmware's iPXE and the installer (both send 01 + MAC): the
# installed host would get another address than its install had, the address the server binds
# the install token to. This line makes dhclient send 01 + MAC too.
DHCLIENT_CONF = "/etc/dhcp/dhclient.conf"
DHCLIENT_IDENTIFIER = "send dhcp-client-identifier = hardware;"

# The dom0 console under Xen is hvc0; a getty there is what an operator on the serial line sees.
HVC0_GETTY = "/etc/systemd/system/getty.target.wants/serial-getty@hvc0.service"
SERIAL_GETTY_UNIT = "/lib/systemd/system/serial-getty@.service"


def inside(root: Path, absolute: str) -> Path:
    """Where the dom0 path ``absolute`` lands under a root mounted (or unpacked) at ``root``."""
    return Path(root) / absolute.lstrip("/")
