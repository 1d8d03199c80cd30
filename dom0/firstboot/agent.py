#!/usr/bin/python3
"""The dom0 first-boot agent: register this host with the provisioning server, once; then
report its health at every boot and every few minutes (``--report``).

It runs inside the freshly installed dom0 with nothing but Debian's python3, so it uses the
standard library only. The installer leaves ``/etc/xcp-provision/firstboot.json`` with the
server URL, a one-time token and a registration key (which lets the server know this host from
whatever address it registers from); the agent reports the host's facts to
``POST {server_url}/api/v1/register``, records the pool answer in
``/etc/xcp-provision/pool.conf``, runs the optional pool-join hook and then disables itself.

Health: the registration answer carries a report token, the host's own credential from then on
(the install token is spent by the join, and anyone may know a MAC). The agent keeps it with
the server URL in ``/etc/xcp-provision/report.json`` (mode 0600), sends a first report at once,
and ``--report`` (xcp-provision-report.service at every boot, its timer every 5 minutes) sends
each md array's level, members, array state and sync progress, read from sysfs, to
``POST {server_url}/api/v1/health``. Exit codes of ``--report``: 0 sent; 2 refused (4xx: the
host was reinstalled or registered again; a new token comes with the next registration);
3 no report token yet; 75 gave up after ``--max-attempts``.

The registration spends the install token, so the agent keeps the server's answer on disk
(``/var/lib/xcp-provision/firstboot.answer.json``, synced) before it does anything else with
it. A boot that lost power before the agent disabled itself (during the first report or the
pool-join hook, minutes on a real pool) finishes from that answer on the next boot, rather than
registering again with a token the server no longer takes.

While the server is unreachable or failing (5xx) it retries with exponential backoff (capped,
with jitter, so a rack of hosts booting together does not hammer the server in step). A 4xx is an
answer, not an outage: the agent logs it and stops without retrying.

Exit codes: 0 registered (or already done earlier); 1 registered but the pool-join hook failed;
2 the server refused the registration; 3 bad or missing config; 4 registered but the pool refused
the join (the agent stays armed with its token, so the next boot, or a restart of the unit once
the pool is fixed, asks again); 75 gave up after ``--max-attempts``.

On XCP-ng, the hook ``/etc/xcp-provision/hooks/pool-join`` would run::

    xe pool-join master-address="$XCP_POOL_MASTER_ADDRESS" master-username=root \\
        master-password="$XCP_POOL_SECRET"

It gets the answer in its environment (XCP_POOL_STATE, XCP_POOL_NAME, XCP_POOL_ROLE,
XCP_POOL_MASTER_ADDRESS, XCP_POOL_SECRET) and runs only when the server placed this host in a
pool as a member.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import logging
import os
import random
import shlex
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

log = logging.getLogger("xcp-provision-firstboot")

CONFIG = "etc/xcp-provision/firstboot.json"
POOL_CONF = "etc/xcp-provision/pool.conf"
HOOK = "etc/xcp-provision/hooks/pool-join"
RELEASE = "etc/xcp-provision/release"
OS_RELEASE = "etc/os-release"
UNIT_WANTS = "etc/systemd/system/multi-user.target.wants/xcp-provision-firstboot.service"
DONE = "var/lib/xcp-provision/firstboot.done"
ANSWER = "var/lib/xcp-provision/firstboot.answer.json"
REPORT_CONFIG = "etc/xcp-provision/report.json"
SYS_BLOCK = "sys/block"  # under --root like the rest: tests give md arrays a sysfs-shaped tree
REGISTER_PATH = "/api/v1/register"  # common/wire.py's REGISTER and HEALTH: this file runs
HEALTH_PATH = "/api/v1/health"  # alone in dom0, so a test holds the two equal
# common/registration_key.py's FIELD, held equal the same way: the secret the installer left in
# the config, sent with the registration so the server knows this host from any address.
REGISTRATION_KEY = "registration_key"
REPORT_ATTEMPTS = 8  # --report's default: about 3 minutes of backoff, then the timer's turn

EXIT_OK, EXIT_HOOK, EXIT_REFUSED, EXIT_CONFIG, EXIT_NOT_JOINED, EXIT_GAVE_UP = 0, 1, 2, 3, 4, 75
REQUIRED = ("server_url", "token")


class ConfigError(Exception):
    """The installer's first-boot config is missing or unusable."""


class RefusedError(Exception):
    """The server answered 4xx: retrying would get the same answer."""


class UnavailableError(Exception):
    """The server could not be reached or answered 5xx: worth retrying."""


# --- config --------------------------------------------------------------------------------


def load_config(root: Path) -> dict:
    path = root / CONFIG
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise ConfigError(f"{path} does not exist; the installer writes it") from exc
    except ValueError as exc:
        raise ConfigError(f"{path} is not valid JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a JSON object")
    missing = [key for key in REQUIRED if not data.get(key)]
    if missing:
        raise ConfigError(f"{path} lacks {', '.join(missing)}")
    scheme = urllib.parse.urlsplit(data["server_url"]).scheme
    if scheme not in ("http", "https"):
        raise ConfigError(f"{path}: server_url {data['server_url']!r} is not an http(s) URL")
    return data


# --- facts ---------------------------------------------------------------------------------


def _read(path: Path | str, default: str = "") -> str:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return default


def _command(argv: list[str]) -> str:
    """Output of a probe command, or "" when it is absent or fails: facts are best effort."""
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return proc.stdout if proc.returncode == 0 else ""


def xl_info() -> dict[str, str]:
    info = {}
    for line in _command(["xl", "info"]).splitlines():
        key, sep, value = line.partition(":")
        if sep:
            info[key.strip()] = value.strip()
    return info


def xen_version(info: dict[str, str]) -> str | None:
    if "xen_version" in info:
        return info["xen_version"]
    if "xen_major" in info:
        return f"{info['xen_major']}.{info['xen_minor']}{info.get('xen_extra', '')}"
    major = _read("/sys/hypervisor/version/major")
    if not major:
        return None
    minor = _read("/sys/hypervisor/version/minor")
    return f"{major}.{minor}{_read('/sys/hypervisor/version/extra')}"


def cpu_facts(info: dict[str, str]) -> dict:
    fields: dict[str, str] = {}
    for line in _read("/proc/cpuinfo").splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() not in fields:
            fields[key.strip()] = value.strip()
    cores = int(info["nr_cpus"]) if info.get("nr_cpus", "").isdigit() else os.cpu_count()
    return {
        "cpu_vendor": fields.get("vendor_id", ""),
        "cpu_model": fields.get("model name", ""),
        "cpu_flags": fields.get("flags", "").split(),
        "cores": cores,
    }


def memory_mib(info: dict[str, str]) -> int:
    """The host's memory in MiB: Xen's total (dom0 only sees its share), else the kernel's."""
    if info.get("total_memory", "").isdigit():
        return int(info["total_memory"])
    for line in _read("/proc/meminfo").splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) // 1024
    return 0


def dom0_release(root: Path) -> str:
    name = _read(root / RELEASE)
    if name:
        return name
    for line in _read(root / OS_RELEASE).splitlines():
        key, _, value = line.partition("=")
        if key == "VERSION_ID":
            return value.strip().strip('"')
    return ""


def network_backend(interface: str | None) -> str:
    """The backend that carries the management interface, as XAPI names it, from what runs.

    "openvswitch" when the interface (or the device under its VLAN) is a bridge of a running
    ovs-vswitchd, "bridge" when it is a Linux bridge or a port of one, else "none" (an address
    on a bare NIC). What the answer file asked for is no proof: the pool compares this.
    """
    device = vlan_parent(interface) or interface
    if not device:
        return "none"
    if device in _ovs_bridges():
        return "openvswitch"
    net = Path("/sys/class/net") / device
    if (net / "bridge").is_dir() or (net / "master" / "bridge").is_dir():
        return "bridge"
    return "none"


def _ovs_bridges() -> list[str]:
    """Bridges of a running Open vSwitch: ovs-vswitchd answers, and its database lists them."""
    if not _command(["ovs-appctl", "--timeout=5", "-t", "ovs-vswitchd", "version"]):
        return []
    return _command(["ovs-vsctl", "--timeout=5", "list-br"]).split()


def vlan_parent(interface: str | None) -> str | None:
    """The device a VLAN interface is on (``Device:`` in /proc/net/vlan), None for the rest."""
    if not interface:
        return None
    for line in _read(f"/proc/net/vlan/{interface}").splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "Device" and value.strip():
            return value.strip()
    return None


def management_ip(server_url: str) -> str | None:
    """The local address this host uses to reach the server (a UDP connect sends nothing)."""
    parts = urllib.parse.urlsplit(server_url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        infos = socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_DGRAM)
        family, _, _, _, address = infos[0]
        with socket.socket(family, socket.SOCK_DGRAM) as sock:
            sock.connect(address)
            return sock.getsockname()[0]
    except OSError:
        return None


def interface_of(ip: str | None) -> str | None:
    if not ip:
        return None
    try:
        entries = json.loads(_command(["ip", "-j", "addr", "show"]) or "[]")
    except ValueError:
        return None
    for entry in entries:
        for addr in entry.get("addr_info", []):
            if addr.get("local") == ip:
                return entry.get("ifname")
    return None


def vlan_of(interface: str | None) -> int | None:
    if not interface:
        return None
    for line in _read(f"/proc/net/vlan/{interface}").splitlines():
        if "VID:" in line:
            return int(line.split("VID:")[1].split()[0])
    base, dot, tag = interface.rpartition(".")
    return int(tag) if base and dot and tag.isdigit() else None


def nics() -> list[dict]:
    result = []
    for dev in sorted(Path("/sys/class/net").iterdir()):
        if dev.name == "lo" or not (dev / "device").exists():
            continue
        driver = dev / "device" / "driver"
        speed = _read(dev / "speed")
        result.append(
            {
                "name": dev.name,
                "mac": _read(dev / "address"),
                "driver": driver.resolve().name if driver.exists() else "",
                "speed_mbps": int(speed) if speed.lstrip("-").isdigit() else None,
                "state": _read(dev / "operstate"),
            }
        )
    return result


def disks() -> list[dict]:
    result = []
    for dev in sorted(Path("/sys/block").iterdir()):
        if dev.name.startswith(("loop", "ram", "zram", "dm-", "sr", "md", "nbd")):
            continue
        sectors = _read(dev / "size", "0")
        result.append(
            {
                "name": dev.name,
                "size_bytes": int(sectors) * 512 if sectors.isdigit() else 0,
                "model": _read(dev / "device" / "model"),
                "rotational": _read(dev / "queue" / "rotational") == "1",
            }
        )
    return result


def _number(path: Path) -> int:
    text = _read(path)
    return int(text) if text.isdigit() else 0


def sync_progress(md: Path) -> float | None:
    """Percent done of the running sync action: md/sync_completed reads "done / total" in
    sectors while one runs, "none" (or "delayed") otherwise."""
    done, sep, total = _read(md / "sync_completed").partition("/")
    done, total = done.strip(), total.strip()
    if not (sep and done.isdigit() and total.isdigit() and int(total) > 0):
        return None
    return round(100 * int(done) / int(total), 1)


def raid_arrays(sys_block: Path) -> list[dict]:
    """Every md array as the kernel shows it in sysfs: level, members present (raid_disks less
    degraded) and expected, array state, sync action and its progress. Containers (IMSM, DDF)
    hold no data themselves and are left out, as are md nodes nothing was assembled into."""
    arrays = []
    for dev in sorted(sys_block.glob("md*")):
        md = dev / "md"
        level = _read(md / "level")
        if not level or level == "container":
            continue
        expected = _number(md / "raid_disks")
        arrays.append(
            {
                "name": dev.name,
                "level": level,
                "members": max(expected - _number(md / "degraded"), 0),
                "expected": expected,
                "array_state": _read(md / "array_state"),
                "sync_action": _read(md / "sync_action") or None,
                "progress": sync_progress(md),
            }
        )
    return arrays


def mac_of(interface: str | None) -> str:
    return _read(f"/sys/class/net/{interface}/address") if interface else ""


def firmware_identity(dmi: Path = Path("/sys/class/dmi/id")) -> dict[str, str]:
    """The SMBIOS UUID and serial, as the firmware also told the server at PXE time: the server
    gives the pool secret only to a host whose registration matches what it reported then.
    Absent where the kernel exposes no DMI (then the server has nothing to compare)."""
    found = {}
    for key, name in (("smbios_uuid", "product_uuid"), ("serial", "product_serial")):
        value = _read(dmi / name)
        if value:
            found[key] = value
    return found


def collect_facts(root: Path, config: dict) -> dict:
    info = xl_info()
    ip = management_ip(config["server_url"])
    interface = interface_of(ip)
    return {
        "hostname": config.get("hostname") or socket.gethostname(),
        # The pool the answer file asked for (our extension); the server may know better.
        "pool": config.get("pool"),
        "mac": config.get("mac") or mac_of(interface),
        **cpu_facts(info),
        "memory": memory_mib(info),
        "xen_version": xen_version(info),
        "dom0_release": dom0_release(root),
        "network_backend": network_backend(interface),
        "management_ip": ip,
        "management_interface": interface,
        "management_vlan": vlan_of(interface),
        "nics": nics(),
        "disks": disks(),
        **firmware_identity(),
    }


# --- the exchange --------------------------------------------------------------------------


def post_json(url: str, token: str, body: dict, timeout: float = 30) -> dict:
    """POST ``body`` with the bearer ``token``; the JSON object answered. RefusedError for a
    4xx, UnavailableError for anything worth retrying."""
    request = urllib.request.Request(  # noqa: S310 (the scheme is checked in load_config)
        url,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            body = response.read()
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode("utf-8", "replace").strip()[:300]
        if 400 <= exc.code < 500:
            raise RefusedError(f"HTTP {exc.code} from {url}: {detail or exc.reason}") from exc
        raise UnavailableError(f"HTTP {exc.code} from {url}: {detail or exc.reason}") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise UnavailableError(f"{url} unreachable: {getattr(exc, 'reason', exc)}") from exc
    try:
        answer = json.loads(body)
    except ValueError as exc:
        raise UnavailableError(f"{url} answered something that is not JSON") from exc
    if not isinstance(answer, dict):
        raise UnavailableError(f"{url} answered JSON that is not an object: {body[:200]!r}")
    return answer


def register(server_url: str, token: str, facts: dict, timeout: float = 30) -> dict:
    url = server_url.rstrip("/") + REGISTER_PATH
    answer = post_json(url, token, facts, timeout)
    if answer.get("state") not in ("in-pool", "registered"):
        raise UnavailableError(f"{url} answered without a registration state: {answer!r:.200}")
    return answer


def backoff_delays(base: float, cap: float, rng: random.Random):
    """Exponential delays, capped, each drawn from the upper half of its window (jitter)."""
    attempt = 0
    while True:
        ceiling = min(cap, base * 2**attempt)
        yield rng.uniform(ceiling / 2, ceiling)
        attempt += 1


def register_with_retries(
    config: dict,
    collect,
    *,
    max_attempts: int,
    base: float,
    cap: float,
    sleep=time.sleep,
    rng: random.Random | None = None,
) -> dict:
    """Register, collecting the facts afresh each attempt.

    Early in the first boot the management address may not exist yet (DHCP still running, DNS
    not answering); that is an outage to wait out like a dead server, not a report to send: the
    server would refuse it (4xx) and the host would never register. So is a link-local or
    loopback IPv6 address: while the static or autoconf address is still tentative (duplicate
    address detection, a second or more), the kernel reaches an on-link server from fe80::, or
    from ::1 while fe80:: is tentative too.
    """

    def attempt() -> dict:
        facts = collect()
        address = facts.get("management_ip")
        if not address:
            raise UnavailableError(f"no route to {config['server_url']} yet (no local address)")
        ip = ipaddress.ip_address(address)
        if ip.is_link_local or (ip.version == 6 and ip.is_loopback):
            # With every address of the link still tentative the kernel even picks ::1, and a
            # connection from there hangs until its timeout. IPv4 has no such state: 127.0.0.1
            # is the source only for a server on this machine, which it does reach.
            scope = "link-local" if ip.is_link_local else "loopback"
            raise UnavailableError(
                f"only the {scope} {address} reaches {config['server_url']} yet (the "
                "management address is not usable yet)"
            )
        key = config.get(REGISTRATION_KEY)
        body = {**facts, REGISTRATION_KEY: key} if key else facts
        return register(config["server_url"], config["token"], body)

    return with_retries(attempt, max_attempts=max_attempts, base=base, cap=cap, sleep=sleep,
                        rng=rng)  # fmt: skip


def with_retries(
    call,
    *,
    max_attempts: int,
    base: float,
    cap: float,
    sleep=time.sleep,
    rng: random.Random | None = None,
) -> dict:
    """``call()`` again after each UnavailableError, with backoff, ``max_attempts`` times at
    most (0: until it answers); a RefusedError ends it at once."""
    delays = backoff_delays(base, cap, rng or random.Random())  # noqa: S311 (jitter, not secrets)
    attempt = 0
    while True:
        attempt += 1
        try:
            return call()
        except UnavailableError as exc:
            if max_attempts and attempt >= max_attempts:
                raise
            delay = next(delays)
            log.warning("attempt %d: %s; retrying in %.1f s", attempt, exc, delay)
            sleep(delay)


# --- applying the answer -------------------------------------------------------------------


def write_durably(path: Path, text: str, mode: int = 0o644) -> Path:
    """``text`` in ``path`` whole or not at all, on the disk before this returns.

    A host can lose power at any moment of its first boot; a file the next boot reads must
    then hold what was written or what was there before, never a truncated or empty one, which
    ext4 leaves behind a cut within its commit interval when nothing was synced."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    _sync_directory(path.parent)
    return path


def _sync_directory(directory: Path) -> None:
    """The directory's entries (a rename, a removal) on the disk too."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def refused_by_pool(answer: dict) -> bool:
    """Registered but not admitted: the server kept the install token for another try."""
    return answer.get("state") == "registered" and bool(answer.get("reasons"))


def keep_answer(root: Path, answer: dict) -> Path:
    """The registration's answer, kept before anything else happens: the install token is spent
    now, so a boot that lost power before the agent disabled itself finishes from this answer
    instead of registering again. 0600: it holds the pool secret and the report token."""
    return write_durably(root / ANSWER, json.dumps(answer, sort_keys=True) + "\n", 0o600)


def kept_answer(root: Path) -> dict | None:
    """The answer an earlier boot registered with, or None when there is none to finish."""
    try:
        answer = json.loads((root / ANSWER).read_text())
    except FileNotFoundError:
        return None
    except ValueError as exc:  # write_durably leaves no partial file; someone edited it
        raise ConfigError(f"{root / ANSWER} is not valid JSON ({exc})") from exc
    if not isinstance(answer, dict):
        raise ConfigError(f"{root / ANSWER} must hold a JSON object")
    return answer


def write_pool_conf(root: Path, answer: dict) -> Path:
    """Shell-sourceable ``KEY=value`` lines; 0600 because it holds the pool secret."""
    values = {
        "STATE": answer.get("state") or "",
        "POOL": answer.get("pool") or "",
        "ROLE": answer.get("role") or "",
        "MASTER_ADDRESS": answer.get("master_address") or "",
        "POOL_SECRET": answer.get("pool_secret") or "",
        "REASONS": "; ".join(answer.get("reasons") or []),
    }
    lines = [f"{key}={shlex.quote(value)}\n" for key, value in values.items()]
    text = "# Written by the xcp-provision first-boot agent.\n" + "".join(lines)
    return write_durably(root / POOL_CONF, text, 0o600)


def run_hook(root: Path, answer: dict) -> bool:
    """Run the pool-join hook for a member; True when it ran fine or had nothing to do."""
    hook = root / HOOK
    if answer.get("state") != "in-pool" or answer.get("role") != "member":
        return True
    if not os.access(hook, os.X_OK):
        log.info("no executable %s; pool join left to the operator", hook)
        return True
    env = {
        **os.environ,
        "XCP_POOL_STATE": answer.get("state") or "",
        "XCP_POOL_NAME": answer.get("pool") or "",
        "XCP_POOL_ROLE": answer.get("role") or "",
        "XCP_POOL_MASTER_ADDRESS": answer.get("master_address") or "",
        "XCP_POOL_SECRET": answer.get("pool_secret") or "",
    }
    proc = subprocess.run([str(hook)], env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        last = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        log.error("pool-join hook %s failed with exit code %d: %s", hook, proc.returncode, last[0])
        return False
    log.info("pool-join hook %s succeeded", hook)
    return True


def disable(root: Path, config: dict) -> None:
    """Never run again: drop the enable symlink, leave a marker, forget the spent token and the
    registration key, which served it alone, and the kept answer, whose work is done."""
    wants = root / UNIT_WANTS
    wants.unlink(missing_ok=True)
    _sync_directory(wants.parent)
    write_durably(root / DONE, time.strftime("%Y-%m-%dT%H:%M:%SZ\n", time.gmtime()))
    kept = {key: value for key, value in config.items() if key not in ("token", REGISTRATION_KEY)}
    write_durably(root / CONFIG, json.dumps(kept, indent=2, sort_keys=True) + "\n", 0o600)
    (root / ANSWER).unlink(missing_ok=True)


# --- health reports ------------------------------------------------------------------------


def write_report_config(root: Path, server_url: str, token: str) -> Path:
    """The report token and where to send reports; 0600: the token is this host's credential."""
    text = json.dumps({"server_url": server_url, "token": token}, indent=2, sort_keys=True)
    return write_durably(root / REPORT_CONFIG, text + "\n", 0o600)


def load_report_config(root: Path) -> dict:
    path = root / REPORT_CONFIG
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise ConfigError(f"{path} does not exist; the host's registration writes it") from exc
    except ValueError as exc:
        raise ConfigError(f"{path} is not valid JSON ({exc})") from exc
    if not isinstance(data, dict) or not all(data.get(key) for key in REQUIRED):
        raise ConfigError(f"{path} must hold server_url and token")
    return data


def send_health(server_url: str, token: str, sys_block: Path) -> dict:
    """One report of the md arrays under ``sys_block``, read afresh; the server's judgement."""
    url = server_url.rstrip("/") + HEALTH_PATH
    return post_json(url, token, {"raid": raid_arrays(sys_block)})


def describe_health(answer: dict) -> str:
    arrays = ", ".join(
        f"{a.get('name')} {a.get('state')} ({a.get('members')} of {a.get('expected')})"
        for a in answer.get("raid") or []
    )
    return f"software RAID {answer.get('raid_state')}" + (f": {arrays}" if arrays else "")


def report(root: Path, *, max_attempts: int, base: float, cap: float) -> int:
    """``--report``: send this host's health once, retrying an unreachable server."""
    try:
        config = load_report_config(root)
    except ConfigError as exc:
        log.error("cannot report: %s", exc)
        return EXIT_CONFIG
    try:
        answer = with_retries(
            lambda: send_health(config["server_url"], config["token"], root / SYS_BLOCK),
            max_attempts=max_attempts, base=base, cap=cap,
        )  # fmt: skip
    except RefusedError as exc:
        log.error("health report refused, not retrying: %s", exc)
        return EXIT_REFUSED
    except UnavailableError as exc:
        log.error("giving up after %d attempts: %s", max_attempts, exc)
        return EXIT_GAVE_UP
    log.info("reported: %s", describe_health(answer))
    return EXIT_OK


# --- main ----------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Register this host with xcp-provision, once; or report its health."
    )
    parser.add_argument(
        "--report",
        action="store_true",
        help="Send this host's health (software RAID) with the report token registration gave.",
    )
    parser.add_argument(
        "--root",
        default=os.environ.get("XCP_PROVISION_ROOT", "/"),
        help="Root directory holding etc/ and var/ (tests use a temporary one).",
    )
    parser.add_argument(
        "--max-attempts",
        type=int,
        default=None,
        help=f"0: keep trying (the default, but {REPORT_ATTEMPTS} with --report).",
    )
    parser.add_argument("--backoff-base", type=float, default=2.0, help="First delay, seconds.")
    parser.add_argument("--backoff-cap", type=float, default=300.0, help="Longest delay.")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    root = Path(args.root)
    if args.report:
        logging.basicConfig(level=logging.INFO, format="xcp-provision-report: %(message)s")
        attempts = REPORT_ATTEMPTS if args.max_attempts is None else args.max_attempts
        return report(root, max_attempts=attempts, base=args.backoff_base, cap=args.backoff_cap)
    logging.basicConfig(level=logging.INFO, format="xcp-provision-firstboot: %(message)s")
    args.max_attempts = args.max_attempts or 0
    return first_boot(root, args)


def answer_to_finish(root: Path, config: dict, args: argparse.Namespace) -> dict:
    """The answer an earlier boot kept, else a new registration's (kept unless the pool refused
    the host, whose token then stays unspent for the next try)."""
    answer = kept_answer(root)
    if answer is not None:
        log.info("registered on an earlier boot that stopped before finishing; finishing now")
        return answer
    hostname = config.get("hostname") or socket.gethostname()
    log.info("registering %s with %s", hostname, config["server_url"])
    answer = register_with_retries(
        config,
        lambda: collect_facts(root, config),
        max_attempts=args.max_attempts,
        base=args.backoff_base,
        cap=args.backoff_cap,
    )
    if not refused_by_pool(answer):
        keep_answer(root, answer)
    return answer


def first_boot(root: Path, args: argparse.Namespace) -> int:
    """Register, once: the pool answer, the report token, the hook, then never again."""
    if (root / DONE).exists():
        log.info("already registered (%s exists); nothing to do", root / DONE)
        return EXIT_OK
    try:
        config = load_config(root)
        answer = answer_to_finish(root, config, args)
    except ConfigError as exc:
        log.error("cannot register: %s", exc)
        return EXIT_CONFIG
    except RefusedError as exc:
        log.error("registration refused, not retrying: %s", exc)
        return EXIT_REFUSED
    except UnavailableError as exc:
        log.error("giving up after %d attempts: %s", args.max_attempts, exc)
        return EXIT_GAVE_UP
    write_pool_conf(root, answer)
    if answer.get("report_token"):
        write_report_config(root, config["server_url"], answer["report_token"])
        # The first report now, briefly: the report unit's timer sends the next ones.
        report(root, max_attempts=3, base=args.backoff_base, cap=args.backoff_cap)
    log.info(
        "registered: state %s, pool %s, role %s%s",
        answer.get("state"),
        answer.get("pool"),
        answer.get("role"),
        f" (reasons: {'; '.join(answer['reasons'])})" if answer.get("reasons") else "",
    )
    if refused_by_pool(answer):
        # The pool refused us; the server kept our token so that a fixed pool (force, a matching
        # master) admits us on the next try. Disabling now would need a reinstall instead.
        log.warning(
            "not joined; still armed: restart xcp-provision-firstboot once the pool "
            "accepts this host"
        )
        return EXIT_NOT_JOINED
    hook_ok = run_hook(root, answer)
    disable(root, config)
    return EXIT_OK if hook_ok else EXIT_HOOK


if __name__ == "__main__":
    sys.exit(main())
