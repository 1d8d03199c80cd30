"""The lab's serial wire between a VM and its BMC, on loopback with real sockets: the BMC's one
connection outlives the VM's power cycles, and the VM's port is not opened before the BMC is
there to read it."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from lab.uart import ADDRESS


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((ADDRESS, 0))
        return sock.getsockname()[1]


def _accept(server: socket.socket, timeout: float = 5) -> socket.socket:
    server.settimeout(timeout)
    conn, _ = server.accept()
    conn.settimeout(timeout)
    return conn


def _connect(port: int, timeout: float = 5) -> socket.socket:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return socket.create_connection((ADDRESS, port), timeout=timeout)
        except ConnectionRefusedError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _read(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            break
        data += chunk
    return data


@pytest.fixture
def ports() -> Iterator[tuple[int, int]]:
    bmc_port, vm_port = _free_port(), _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "lab.uart", str(bmc_port), str(vm_port)])
    try:
        yield bmc_port, vm_port
    finally:
        proc.kill()
        proc.wait()


def test_one_bmc_connection_carries_every_power_cycle_of_the_vm(ports) -> None:
    bmc_port, vm_port = ports
    bmc = _connect(bmc_port)
    for boot in range(3):
        with socket.create_server((ADDRESS, vm_port)) as qemu:  # a power-on: QEMU listens
            started = time.monotonic()
            vm = _accept(qemu)
            assert time.monotonic() - started < 2
            with vm:
                line = f"boot {boot}: GRUB menu\r\n".encode()
                vm.sendall(line)
                assert _read(bmc, len(line)) == line
                bmc.sendall(b"\r")  # a key pressed in the SOL session reaches the VM
                assert _read(vm, 1) == b"\r"
        # power off: the VM's end closes; the BMC's stays
    bmc.close()


def test_the_vm_port_is_not_opened_before_the_bmc_connects(ports) -> None:
    bmc_port, vm_port = ports
    with socket.create_server((ADDRESS, vm_port)) as qemu:
        qemu.settimeout(0.5)
        with pytest.raises(TimeoutError):
            qemu.accept()
        with _connect(bmc_port) as bmc, _accept(qemu) as vm:
            vm.sendall(b"Xen 4.17\r\n")
            assert _read(bmc, 10) == b"Xen 4.17\r\n"


def test_a_bmc_that_reconnects_is_wired_again(ports) -> None:
    bmc_port, vm_port = ports
    with socket.create_server((ADDRESS, vm_port)) as qemu:
        with _connect(bmc_port):
            first = _accept(qemu)
        with first:
            assert first.recv(1) == b""  # the BMC went away: the VM's end is let go
        with _connect(bmc_port) as bmc, _accept(qemu) as vm:
            vm.sendall(b"login: ")
            assert _read(bmc, 7) == b"login: "
