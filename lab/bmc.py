"""A BMC per lab VM: OpenIPMI's ``ipmi_sim``, reached over IPMI 2.0 on LAN like a real one.

The VM is wired to its BMC the way QEMU documents an external BMC (a socket chardev, an
``ipmi-bmc-extern`` device and a KCS interface), so the guest sees a KCS BMC and ``ipmi_sim``
its VM channel. The BMC owns the VM's power: nothing else starts the VM.

ipmi_sim 2.0.33 accepts a boot device (Set System Boot Options, parameter 5: what an
operator's "next boot from the network" is) only when it has a ``chassis_control`` program,
and once it has one it hands that program its power requests too, instead of running its
``startcmd``. So the program written here is the VM's power switch and its start command in
one, as a real machine's firmware is: ``power 1`` boots the VM from the network once and then
from its disk when the boot device is ``pxe``, from its disk otherwise; the override is spent
by that boot, as an IPMI "next boot only" override is. SeaBIOS takes that from ``-boot
order=c,once=n``. OVMF ignores ``-boot`` and boots its disk's fallback loader before the
network once a disk is installed, so a UEFI VM's network boot is its own QEMU run with the NIC
first (``bootindex``) and ``-no-reboot``: the installer's reboot ends that run and the VM goes
on in a second one, disk first, as the same machine would. ``power 0`` stops the VM (SIGTERM to
its process group, so the disk image is closed cleanly; SIGKILL if still there after 30 s);
``reset`` is off then on, so a reset also applies a new boot device.

The VM's serial port is the BMC's serial-over-LAN port, as on a rack server: QEMU listens on a
TCP port, and ``ipmi_sim`` reaches it through a relay that stays up across power cycles (the
wire of :mod:`lab.uart`), so ``ipmitool sol activate`` shows what the VM writes to COM1. QEMU
waits for that connection before it starts the machine (``wait=on``), so not even a UEFI VM's
GRUB menu, drawn within a second, is lost to the BMC. The BMC keeps a history of the port
(``history=``), which makes it read the port all the time, as a real BMC drains its UART:
without one, ipmi_sim reads only during an SOL session, the socket fills, and the guest stalls
on its serial port. QEMU also logs the port to the serial log, in append mode, so a VM's boots
follow each other in one file.
"""

from __future__ import annotations

import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from common.runner import run
from lab import qemu
from lab.errors import LabError
from lab.netns import LabNetwork
from lab.process import Background, bounded, launch, stopped_unless_ready

USER = "admin"
PASSWORD = "lab-bmc-Secret1"  # noqa: S105 - the lab's simulated BMCs; IPMI: <= 20 bytes
ADDRESS = "127.0.0.1"  # inside the lab's namespace, where the server runs too
FIRST_PORT = 6230  # IPMI over LAN (UDP), one port per VM
FIRST_VM_PORT = 9100  # ipmi_sim's VM channel (TCP), one port per VM
FIRST_SOL_PORT = 9200  # the VM's COM1 (TCP, QEMU listening), one port per VM
FIRST_UART_PORT = 9300  # the relay's end ipmi_sim connects to, one port per VM

_CHASSIS = r"""#!/bin/sh
# ipmi_sim's chassis_control for one lab VM: <dir> get NAME... | <dir> set NAME VALUE...
dir=$1; op=$2; shift 2
note() { echo "$(date -u +%Y-%m-%dT%H:%M:%S.%N) $*" >> "$dir/actions.log"; }
vmpid() { cat "$dir/vm.pid" 2>/dev/null; }
alive() {
  p=$(vmpid)
  [ -n "$p" ] && [ -r "/proc/$p/status" ] && ! grep -q '^State:.*zombie' "/proc/$p/status"
}
power_on() {
  alive && return 0
  boot=$(cat "$dir/boot" 2>/dev/null || echo default)
  if [ "$boot" = pxe ]; then first=pxe; else first=disk; fi
  echo default > "$dir/boot"  # a next-boot override is spent by that boot
  note "power on: boot device $boot, first from $first"
  setsid "$dir/start-vm" "$first" >> "$dir/qemu.log" 2>&1 < /dev/null &
  echo $! > "$dir/vm.pid"
}
power_off() {
  if alive; then
    p=$(vmpid)
    note "power off: stopping pid $p"
    kill -TERM "-$p"  # its process group (dash's kill knows no "--")
    i=0
    while alive && [ $i -lt 150 ]; do sleep 0.2; i=$((i + 1)); done
    if alive; then note "power off: pid $p ignored SIGTERM; killed"; kill -KILL "-$p"; fi
  fi
  rm -f "$dir/vm.pid"
}
case $op in
  get)
    for name in "$@"; do
      case $name in
        power) if alive; then echo "power:1"; else echo "power:0"; fi ;;
        boot) echo "boot:$(cat "$dir/boot" 2>/dev/null || echo default)" ;;
        *) echo "power:0" ;;
      esac
    done ;;
  set)
    while [ $# -ge 2 ]; do
      case $1 in
        power) if [ "$2" = 1 ]; then power_on; else power_off; fi ;;
        reset) note "reset"; power_off; power_on ;;
        shutdown) power_off ;;
        boot) note "boot device $2"; echo "$2" > "$dir/boot" ;;
      esac
      shift 2
    done ;;
  *) echo "unknown operation $op"; exit 1 ;;
esac
"""


# ipmi_sim's lan_config_program: the BMC's own LAN port, as the VM's installer reads it in-band.
_LAN_CONFIG = r"""#!/bin/sh
# <mac> get NAME...
mac=$1; shift 2
for name in "$@"; do
  case $name in
    ip_addr) echo "ip_addr:%(address)s" ;;
    ip_addr_src) echo "ip_addr_src:static" ;;
    mac_addr) echo "mac_addr:$mac" ;;
    subnet_mask) echo "subnet_mask:255.0.0.0" ;;
    *mac_addr) echo "$name:00:00:00:00:00:00" ;;
    *) echo "$name:0.0.0.0" ;;
  esac
done
"""


@dataclass(frozen=True)
class LabBmc:
    """One VM's BMC: where it listens, and the folder holding its configuration and state."""

    vm: qemu.VmSpec
    index: int

    @property
    def port(self) -> int:
        return FIRST_PORT + self.index

    @property
    def vm_port(self) -> int:
        return FIRST_VM_PORT + self.index

    @property
    def mac(self) -> str:
        """The BMC's own LAN MAC, as it reports it."""
        return f"52:54:00:bb:00:{self.index:02x}"

    @property
    def sol_port(self) -> int:
        return FIRST_SOL_PORT + self.index

    @property
    def uart_port(self) -> int:
        return FIRST_UART_PORT + self.index

    @property
    def sol_log(self) -> Path:
        """What ``ipmitool sol activate`` printed while :func:`watch_sol` ran."""
        return self.workdir / "sol.log"

    @property
    def workdir(self) -> Path:
        return self.vm.workdir / f"{self.vm.name}.bmc"

    def api_body(self) -> dict[str, object]:
        """The body of ``PUT /api/v1/hosts/{ref}/bmc`` registering this BMC."""
        return {
            "driver": "ipmi",
            "address": ADDRESS,
            "port": self.port,
            "username": USER,
            "password": PASSWORD,
        }

    def api_body_as_seen(self) -> dict[str, object]:
        """The same without the address (the installer reported it) nor the password (kept):
        an operator's one-step assignment. The port stays: the lab's BMCs share an address."""
        return {"driver": "ipmi", "port": self.port, "username": USER}

    def actions(self) -> list[str]:
        """What the BMC did to its VM (power on with which boot device, off, reset)."""
        path = self.workdir / "actions.log"
        return path.read_text().splitlines() if path.exists() else []


def vm_command(
    bmc: LabBmc, net: LabNetwork, max_seconds: float, *, network_first: bool
) -> list[str]:
    """The VM's QEMU command with its BMC wired in, COM1 served to the BMC and appended to the
    serial log, booting from the network once (``network_first``) or from its disk."""
    serial = [
        "-chardev", f"socket,id=serial0,host={ADDRESS},port={bmc.sol_port},server=on,wait=on,"
                    f"logfile={bmc.vm.serial_log},logappend=on",
        "-serial", "chardev:serial0",
    ]  # fmt: skip
    extra = [
        "-chardev", f"socket,id=ipmi0,host={ADDRESS},port={bmc.vm_port},reconnect=10",
        "-device", "ipmi-bmc-extern,id=bmc0,chardev=ipmi0",
        "-device", "isa-ipmi-kcs,bmc=bmc0",
    ]  # fmt: skip
    if not bmc.vm.uefi:
        order = qemu.BootOrder("order=c,once=n" if network_first else "order=c")
    elif network_first:  # this run ends at the installer's reboot (see the module's docstring)
        order = qemu.BootOrder(None, nic_index=0, disk_index=1)
        extra.append("-no-reboot")
    else:
        order = qemu.BootOrder(None, nic_index=1, disk_index=0)
    return qemu.command(bmc.vm, net, max_seconds, serial=serial, order=order, extra=extra)


def _start_script(bmc: LabBmc, net: LabNetwork, max_seconds: float) -> str:
    """``start-vm pxe|disk``: the VM as its BMC powers it on (see the module's docstring)."""

    def line(network_first: bool) -> str:
        return shlex.join(vm_command(bmc, net, max_seconds, network_first=network_first))

    pxe = f"exec {line(True)}" if not bmc.vm.uefi else line(True)
    return (
        "#!/bin/sh\n"
        f"# Lab VM {bmc.vm.name} as its BMC powers it on; $1: pxe (network once) or disk.\n"
        'if [ "$1" = pxe ]; then\n'
        f"  {pxe}\n"
        "fi\n"
        f"exec {line(False)}\n"
    )


def _write(bmc: LabBmc, net: LabNetwork, max_seconds: float) -> None:
    work = bmc.workdir
    (work / "state").mkdir(parents=True, exist_ok=True)
    chassis = work / "chassis"
    chassis.write_text(_CHASSIS)
    chassis.chmod(0o755)
    lan_config = work / "lan-config"
    lan_config.write_text(_LAN_CONFIG % {"address": ADDRESS})
    lan_config.chmod(0o755)
    start = work / "start-vm"
    start.write_text(_start_script(bmc, net, max_seconds))
    start.chmod(0o755)
    (work / "boot").write_text("default\n")
    (work / "lan.conf").write_text(
        f'name "{bmc.vm.name}"\n'
        "set_working_mc 0x20\n"
        "  startlan 1\n"
        f"    addr {ADDRESS} {bmc.port}\n"
        "    priv_limit admin\n"
        "    allowed_auths_callback md5\n"
        "    allowed_auths_user md5\n"
        "    allowed_auths_operator md5\n"
        "    allowed_auths_admin md5\n"
        "    guid a123456789abcdefa123456789abcd" + f"{bmc.index:02x}\n"
        f'    lan_config_program "{lan_config} {bmc.mac}"\n'
        "  endlan\n"
        f"  serial 15 {ADDRESS} {bmc.vm_port} codec VM\n"
        f'  sol "tcp:{ADDRESS}:{bmc.uart_port}" 115200 history=65536\n'
        f'  chassis_control "{chassis} {work}"\n'
        f'  user 2 true "{USER}" "{PASSWORD}" admin 10 md5\n'
    )
    (work / "bmc.emu").write_text(
        "mc_setbmc 0x20\n"
        "mc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02 persist_sdr\n"
        "mc_enable 0x20\n"
    )


def _ipmitool_argv(bmc: LabBmc, *args: str) -> list[str]:
    return ["ipmitool", "-I", "lanplus", "-C", "3", "-H", ADDRESS, "-p", str(bmc.port),
            "-U", USER, "-P", PASSWORD, *args]  # fmt: skip


def _ipmitool(bmc: LabBmc, net: LabNetwork, *args: str) -> int:
    argv = [*net.exec_prefix(), *_ipmitool_argv(bmc, *args)]
    return run(argv, check=False, timeout=30).returncode


def watch_sol(bmc: LabBmc, net: LabNetwork, max_seconds: float) -> Background:
    """``ipmitool sol activate`` on the VM's BMC, as an operator would run it, printing into
    :attr:`LabBmc.sol_log` until stopped. A session left over from an earlier watcher is
    ended first (a BMC allows one). ipmitool ends its session when its input closes, so the
    input is a pipe held open for ``max_seconds``."""
    _ipmitool(bmc, net, "sol", "deactivate")
    activate = " ".join(shlex.quote(w) for w in _ipmitool_argv(bmc, "sol", "activate"))
    argv = [*net.exec_prefix(), "sh", "-c", f"sleep {int(max_seconds)} | {activate}"]
    return launch(f"{bmc.vm.name}-sol", argv, bmc.sol_log)


def start(
    bmc: LabBmc, net: LabNetwork, max_seconds: float, ready_timeout: float = 30
) -> tuple[Background, Background]:
    """Write the BMC's configuration and start, in the namespace, the wire to the VM's serial
    port and then ``ipmi_sim`` (VM off). Both are to be stopped at teardown."""
    _write(bmc, net, max_seconds)
    work = bmc.workdir
    uart = [*net.exec_prefix(), *bounded(max_seconds), sys.executable, "-m", "lab.uart",
            str(bmc.uart_port), str(bmc.sol_port)]  # fmt: skip
    wire = launch(f"{bmc.vm.name}-uart", uart, work / "uart.log")
    argv = [*net.exec_prefix(), *bounded(max_seconds), "ipmi_sim", "-n",
            "-c", str(work / "lan.conf"), "-f", str(work / "bmc.emu"),
            "-s", str(work / "state")]  # fmt: skip
    sim = launch(f"{bmc.vm.name}-bmc", argv, work / "ipmi_sim.log")
    deadline = time.monotonic() + ready_timeout
    with stopped_unless_ready(sim, wire):
        while _ipmitool(bmc, net, "chassis", "power", "status") != 0:
            if not sim.running() or not wire.running() or time.monotonic() > deadline:
                why = sim.log_tail(5) if wire.running() else f"its serial wire: {wire.log_tail(5)}"
                raise LabError("bmc", f"ipmi_sim of {bmc.vm.name} did not answer: {why}")
            time.sleep(0.2)
    return wire, sim


def power_off(bmc: LabBmc) -> None:
    """Stop the VM as its BMC would, whatever state the run ended in (teardown)."""
    run([str(bmc.workdir / "chassis"), str(bmc.workdir), "set", "power", "0"], check=False,
        timeout=60)  # fmt: skip
