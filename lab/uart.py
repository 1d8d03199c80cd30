"""The cable between a lab VM's COM1 and its BMC: one TCP relay that outlives the VM's power cycles.

ipmi_sim reaches a serial-over-LAN port over TCP as a client, and when that connection drops it
tries again from a timer that its own SOL session handling also stops and restarts: with an
operator's ``sol activate`` running across a power cycle, ipmi_sim 2.0.33 may never reconnect,
and a VM whose QEMU waits for its serial port (``wait=on``) then never starts. A real BMC's UART
is wired to the board and never goes away. This relay stands in for that wire: ipmi_sim
connects to it once, and it connects to each of the VM's QEMU runs in turn, within a tenth of a
second of the run listening. It connects to QEMU only while ipmi_sim is connected, so QEMU
(which waits for its serial port's peer) starts nothing the BMC would miss.

    python3 -m lab.uart BMC_PORT VM_PORT     (inside the lab's namespace, on 127.0.0.1)
"""

from __future__ import annotations

import argparse
import contextlib
import selectors
import socket
import time

ADDRESS = "127.0.0.1"
RETRY_SECONDS = 0.1
_CHUNK = 65536


def _connect(port: int) -> socket.socket | None:
    try:
        sock = socket.create_connection((ADDRESS, port), timeout=1)
    except OSError:
        return None
    sock.settimeout(None)
    return sock


def _pump(bmc: socket.socket, vm: socket.socket) -> bool:
    """Copy both ways until one side closes; True when it was the VM (power off), False when
    the BMC went away."""
    sel = selectors.DefaultSelector()
    sel.register(bmc, selectors.EVENT_READ, vm)
    sel.register(vm, selectors.EVENT_READ, bmc)
    try:
        while True:
            for key, _ in sel.select():
                source = key.fileobj
                assert isinstance(source, socket.socket)
                try:
                    data = source.recv(_CHUNK)
                except OSError:
                    data = b""
                if not data:
                    return source is vm
                try:
                    key.data.sendall(data)
                except OSError:
                    return key.data is vm
    finally:
        sel.close()


def _still_there(bmc: socket.socket) -> bool:
    """Whether the BMC is still connected while no VM runs (what it sends meanwhile is
    keystrokes to a machine that is off: dropped)."""
    bmc.setblocking(False)
    try:
        return bmc.recv(_CHUNK) != b""
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        bmc.setblocking(True)


def relay(bmc_port: int, vm_port: int) -> None:
    with socket.create_server((ADDRESS, bmc_port)) as server:
        while True:
            bmc, _ = server.accept()
            with bmc:
                bmc.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                while _still_there(bmc):
                    vm = _connect(vm_port)
                    if vm is None:
                        time.sleep(RETRY_SECONDS)
                        continue
                    with vm:
                        vm.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                        if not _pump(bmc, vm):
                            break


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bmc_port", type=int, help="where ipmi_sim connects")
    parser.add_argument("vm_port", type=int, help="where the VM's QEMU listens for COM1")
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        relay(args.bmc_port, args.vm_port)


if __name__ == "__main__":
    main()
