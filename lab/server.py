"""``xcp-provision serve`` as the lab runs it: inside the namespace, on the bridge's address.

Inside the namespace the only links are loopback and the bridge, so the server binds the wildcard
address: a DHCP socket bound to a unicast address never sees the clients' broadcasts. ProxyDHCP
serves the bridge only (``dhcp_interfaces``), TFTP is on port 69 because PXE firmware knows no
other port (or off, for a lab of UEFI HTTP Boot machines, which need none), and the public URL is
pinned to the bridge address so every URL handed to a VM (iPXE script, answer file, release
files, HTTP Boot loader) and the TFTP next-server point where it can reach.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from common.errors import CommandError
from common.runner import run
from lab.errors import LabError
from lab.netns import LabNetwork
from lab.process import Background, bounded, launch, stopped_unless_ready

HTTP_PORT = 8080
TFTP_PORT = 69


def cli_path() -> str:
    """The ``xcp-provision`` next to the running interpreter (the venv's), else on PATH."""
    beside = Path(sys.executable).parent / "xcp-provision"
    if beside.exists():
        return str(beside)
    found = shutil.which("xcp-provision")
    if found is None:
        raise LabError("server", "xcp-provision is not installed (run make setup)")
    return found


@dataclass(frozen=True)
class ServerSpec:
    data_dir: Path
    log_path: Path
    http_port: int = HTTP_PORT
    tftp_port: int = TFTP_PORT
    # What every URL handed to a VM starts with; empty: the bridge's IPv4 address (base_url).
    public_url: str = ""
    bind: str = "0.0.0.0"  # noqa: S104 - only the namespace's bridge and loopback exist
    env: tuple[tuple[str, str], ...] = ()  # further settings, e.g. the [dns] ones

    def base_url(self, net: LabNetwork) -> str:
        """Where the lab itself reaches the server (its API, its health check)."""
        return f"http://{net.server_ip}:{self.http_port}"


def create_token(data_dir: Path, name: str = "lab") -> str:
    """A fresh admin API token (the command prints it as its last line)."""
    try:
        out = run([cli_path(), "tokens", "create", name, "--data-dir", data_dir], timeout=120)
    except CommandError as exc:
        raise LabError("server", f"cannot create an API token: {exc}") from exc
    lines = out.stdout.strip().splitlines()
    if not lines:
        raise LabError("server", "xcp-provision tokens create printed no token")
    return lines[-1].strip()


def start_server(
    spec: ServerSpec, net: LabNetwork, max_seconds: float, ready_timeout: float = 120
) -> Background:
    """Start serve in the namespace and wait until its health check answers."""
    argv = [
        *net.exec_prefix(),
        *bounded(max_seconds),
        cli_path(),
        "serve",
        "--data-dir",
        str(spec.data_dir),
        "--bind",
        spec.bind,
        "--http-port",
        str(spec.http_port),
        "--tftp-port",
        str(spec.tftp_port),
    ]
    env = {
        "XCP_PROVISION_PUBLIC_URL": spec.public_url or spec.base_url(net),
        "XCP_PROVISION_SERVER_IP": net.server_ip,
        "XCP_PROVISION_DHCP_INTERFACES": net.bridge,
        "PYTHONUNBUFFERED": "1",
        **dict(spec.env),
    }
    server = launch("serve", argv, spec.log_path, env=env)
    deadline = time.monotonic() + ready_timeout
    url = f"{spec.base_url(net)}/healthz"
    with stopped_unless_ready(server):
        while time.monotonic() < deadline:
            if not server.running():
                why = f"exited with {server.proc.returncode}: {server.log_tail(8)}"
                raise LabError("server", f"xcp-provision serve {why}")
            probe = run([*net.exec_prefix(), "curl", "-sf", "--max-time", "5", url], check=False)
            if probe.returncode == 0:
                return server
            time.sleep(1)
        raise LabError("server", f"{url} did not answer within {ready_timeout:.0f} s")


def kill_server(server: Background, timeout: float = 30) -> int:
    """SIGKILL the ``xcp-provision serve`` process itself, as a crash or the OOM killer would:
    no clean shutdown, no answer to the requests in flight. Its HTTP workers die with it (they
    ask the kernel for that). Returns the killed pid; the data directory stays as it was, so
    :func:`start_server` with the same spec starts it again on the same data and port."""
    wrapper = server.pid  # `ip netns exec` execs `timeout`, which runs serve as its child
    children = Path(f"/proc/{wrapper}/task/{wrapper}/children")
    try:
        pids = [int(pid) for pid in children.read_text().split()]
    except OSError as exc:
        raise LabError("server", f"no serve process under pid {wrapper}: {exc}") from exc
    if len(pids) != 1:
        raise LabError("server", f"expected serve as the one child of pid {wrapper}, found {pids}")
    os.kill(pids[0], signal.SIGKILL)
    try:
        server.proc.wait(timeout=timeout)  # `timeout` exits once its child is gone
    except subprocess.TimeoutExpired as exc:
        raise LabError("server", f"serve (pid {pids[0]}) did not die of SIGKILL") from exc
    server.stop()  # reaps what is left of its session
    return pids[0]
