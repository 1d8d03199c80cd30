"""Real BMCs on loopback for the power tests.

- IPMI: OpenIPMI's ``ipmi_sim`` speaking IPMI 2.0 (RMCP+) over UDP. Its chassis is a small
  shell program (lan.conf's ``chassis_control``) that keeps power, boot device and resets in
  files of the test's directory and logs every command ipmi_sim gives it.
- Redfish: sushy-tools' emulator with its fake (in-memory) system driver, HTTP basic auth
  (bcrypt), run in its own process (``redfish_serve.py``), behind a thin WSGI layer that logs each
  request's method, path and body (the emulator itself reports every boot override as
  "Continuous", so what was asked is read from that log).
"""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import bcrypt
import pytest
import requests

from common import runner

LOOPBACK = "127.0.0.1"
FAKE_UUID = "2c4f1e1b-6a55-4b3c-9f7a-5d5e0c2a9e01"  # starts off
FAKE_UUID_ON = "7d0e5b8a-3f21-4c6e-8b90-1a2b3c4d5e6f"  # starts on

_CHASSIS = """#!/bin/sh
# ipmi_sim's chassis: <dir> get NAME... | <dir> set NAME VALUE...
dir=$1; op=$2; shift 2
echo "$op $*" >> "$dir/ops.log"
if [ "$op" = get ]; then
  for name in "$@"; do echo "$name:$(cat "$dir/$name" 2>/dev/null || echo 0)"; done
else
  while [ $# -ge 2 ]; do
    if [ "$1" = reset ]; then echo x >> "$dir/resets"; else echo "$2" > "$dir/$1"; fi
    shift 2
  done
fi
"""

# ipmi_sim's lan_config_program: the BMC's own LAN settings, from files under <dir>/lan
# (what ``ipmitool lan print`` shows, in-band or over the LAN).
_LAN_CONFIG = """#!/bin/sh
dir=$1; op=$2; shift 2
for name in "$@"; do
  value=$(cat "$dir/lan/$name" 2>/dev/null)
  case $name in
    *mac_addr) default=00:00:00:00:00:00 ;;
    ip_addr_src) default=other ;;
    *) default=0.0.0.0 ;;
  esac
  echo "$name:${value:-$default}"
done
"""


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


def free_tcp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


def closed_tcp_port() -> int:
    """A loopback TCP port nobody listens on (connections are refused at once)."""
    return free_tcp_port()


def need(tool: str) -> str:
    """The tool's path; a skip when it is missing, which fails the run under CI=true."""
    path = shutil.which(tool)
    if path is None:
        pytest.skip(f"{tool} is not installed (scripts/test-packages.txt)")
    return path


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@dataclass
class IpmiSim:
    port: int
    username: str
    password: str
    workdir: Path

    @property
    def chassis(self) -> Path:
        return self.workdir / "chassis"

    def power(self) -> str:
        """The chassis's power as its own files say (not through IPMI)."""
        path = self.chassis / "power"
        return "on" if path.exists() and path.read_text().strip() == "1" else "off"

    def set_power(self, on: bool) -> None:
        (self.chassis / "power").write_text("1\n" if on else "0\n")

    def boot(self) -> str:
        path = self.chassis / "boot"
        return path.read_text().strip() if path.exists() else ""

    def set_lan(self, **values: str) -> None:
        """The BMC's own LAN port settings (ip_addr, ip_addr_src, mac_addr, subnet_mask...)."""
        lan = self.chassis / "lan"
        lan.mkdir(exist_ok=True)
        for name, value in values.items():
            (lan / name).write_text(value + "\n")

    def resets(self) -> int:
        path = self.chassis / "resets"
        return len(path.read_text().split()) if path.exists() else 0

    def ipmitool(self, *args: str, password: str | None = None) -> runner.Result:
        """An independent client: ipmitool over the same LAN interface."""
        return runner.run(
            [
                "ipmitool",
                "-I",
                "lanplus",
                "-C",
                "3",
                "-H",
                LOOPBACK,
                "-p",
                str(self.port),
                "-U",
                self.username,
                "-P",
                password or self.password,
                *args,
            ],
            check=False,
        )


@contextlib.contextmanager
def running_ipmi_sim(workdir: Path) -> Iterator[IpmiSim]:
    """ipmi_sim on a free loopback UDP port, chassis off; stopped on exit."""
    need("ipmi_sim")
    need("ipmitool")
    workdir.mkdir(parents=True, exist_ok=True)
    chassis = workdir / "chassis"
    chassis.mkdir()
    (chassis / "power").write_text("0\n")
    script = workdir / "chassis.sh"
    script.write_text(_CHASSIS)
    script.chmod(0o755)
    lan_config = workdir / "lan-config.sh"
    lan_config.write_text(_LAN_CONFIG)
    lan_config.chmod(0o755)
    (workdir / "state").mkdir()
    sim = IpmiSim(free_udp_port(), "admin", "ipmi-Secret-7", workdir)
    (workdir / "lan.conf").write_text(
        'name "xcptest"\n'
        "set_working_mc 0x20\n"
        "  startlan 1\n"
        f"    addr {LOOPBACK} {sim.port}\n"
        "    priv_limit admin\n"
        "    allowed_auths_callback md5\n"
        "    allowed_auths_user md5\n"
        "    allowed_auths_operator md5\n"
        "    allowed_auths_admin md5\n"
        "    guid a123456789abcdefa123456789abcdef\n"
        f'    lan_config_program "{lan_config} {chassis}"\n'
        "  endlan\n"
        f'  chassis_control "{script} {chassis}"\n'
        f'  user 2 true "{sim.username}" "{sim.password}" admin 10 md5\n'
    )
    (workdir / "bmc.emu").write_text(
        "mc_setbmc 0x20\n"
        "mc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02 persist_sdr\n"
        "mc_enable 0x20\n"
    )
    log = workdir / "ipmi_sim.log"
    with log.open("wb") as out:
        proc = runner.start(
            [
                "ipmi_sim",
                "-n",
                "-c",
                str(workdir / "lan.conf"),
                "-f",
                str(workdir / "bmc.emu"),
                "-s",
                str(workdir / "state"),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        deadline = time.monotonic() + 15
        while sim.ipmitool("chassis", "power", "status").returncode != 0:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"ipmi_sim did not start: {log.read_text()[-2000:]}")
            time.sleep(0.1)
        (chassis / "ops.log").write_text("")  # the readiness probe is not the test's
        yield sim
    finally:
        _stop(proc)


@dataclass
class RedfishEmulator:
    url: str
    username: str
    password: str
    workdir: Path

    def system_path(self, uuid: str = FAKE_UUID) -> str:
        return f"/redfish/v1/Systems/{uuid}"

    def requests(self) -> list[dict]:
        path = self.workdir / "requests.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line]

    def system(self, uuid: str = FAKE_UUID) -> dict:
        """The system as the emulator reports it, read with requests (not sushy)."""
        reply = requests.get(
            self.url + self.system_path(uuid), auth=(self.username, self.password), timeout=5
        )
        reply.raise_for_status()
        return reply.json()


@contextlib.contextmanager
def running_redfish(workdir: Path) -> Iterator[RedfishEmulator]:
    """sushy-tools' emulator (fake driver) on a free loopback port; stopped on exit."""
    workdir.mkdir(parents=True, exist_ok=True)
    emulator = RedfishEmulator("", "root", "redfish-Secret-9", workdir)
    hashed = bcrypt.hashpw(emulator.password.encode(), bcrypt.gensalt(rounds=4)).decode()
    (workdir / "htpasswd").write_text(f"{emulator.username}:{hashed}\n")
    (workdir / "state").mkdir()
    systems = [
        {"uuid": FAKE_UUID, "name": "xcp-off", "power_state": "Off", "nics": []},
        {"uuid": FAKE_UUID_ON, "name": "xcp-on", "power_state": "On", "nics": []},
    ]
    (workdir / "emulator.conf").write_text(
        f"SUSHY_EMULATOR_AUTH_FILE = {str(workdir / 'htpasswd')!r}\n"
        f"SUSHY_EMULATOR_STATE_DIR = {str(workdir / 'state')!r}\n"
        f"SUSHY_EMULATOR_FAKE_SYSTEMS = {systems!r}\n"
        "SUSHY_EMULATOR_FAKE_DRIVER = True\n"
    )
    port = free_tcp_port()
    emulator.url = f"http://{LOOPBACK}:{port}"
    log = workdir / "emulator.log"
    with log.open("wb") as out:
        proc = runner.start(
            [
                sys.executable,
                str(Path(__file__).with_name("redfish_serve.py")),
                str(workdir),
                str(port),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection((LOOPBACK, port), timeout=1):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"the Redfish emulator did not start: {log.read_text()[-2000:]}"
                    ) from None
                time.sleep(0.1)
        yield emulator
    finally:
        _stop(proc)
