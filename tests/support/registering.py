"""Hosts ready to register, and the facts their first-boot agent would report."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import select

from pxe.config import Settings
from pxe.db.models import Event, Host
from pxe.db.session import Database
from pxe.httpd.server import running_server
from pxe.store.hosts import add_host
from pxe.store.lifecycle import State
from pxe.store.pools import create_pool
from pxe.store.profiles import create_profile
from pxe.store.tokens import issue_install_token
from pxe.web.app import create_app


def mac_of(number: int) -> str:
    return "52:54:00:{:02x}:{:02x}:{:02x}".format(*number.to_bytes(3, "big"))


def ip_of(number: int) -> str:
    return (
        f"192.0.2.{number}"
        if number < 250
        else f"10.{number >> 16 & 255}.{number >> 8 & 255}.{number & 255}"
    )


def facts(number: int, **changes: Any) -> dict[str, Any]:
    """A report shaped like dom0/firstboot/agent.py's ``collect_facts``."""
    return {
        "hostname": f"node{number:04d}",
        "mac": mac_of(number),
        "cpu_vendor": "GenuineIntel",
        "cpu_model": "Intel(R) Xeon(R) Silver 4314",
        "cpu_flags": ["fpu", "vme", "sse2"],
        "cores": 32,
        "memory": 262144,
        "xen_version": "4.17.5",
        "dom0_release": "8.3.0",
        "network_backend": "openvswitch",
        "management_ip": ip_of(number),
        "management_interface": "eth0",
        "management_vlan": None,
        "nics": [{"name": "eth0", "mac": mac_of(number), "driver": "ixgbe"}],
        "disks": [{"name": "sda", "size_bytes": 480103981056}],
        **changes,
    }


def installed_host(
    database: Database,
    number: int,
    *,
    pool: str | None = None,
    profile: str | None = None,
    hostname: str | None = None,
) -> str:
    """Add an installed host (as after build-done) and return its install token."""
    with database.scope() as session:
        host = add_host(
            session,
            macs=[mac_of(number)],
            hostname=hostname,
            pool=pool,
            profile=profile,
            state=State.INSTALLED,
        )
        return issue_install_token(host)


def host_row(database: Database, number: int) -> Host:
    with database.scope(write=False) as session:
        host = session.scalars(select(Host).where(Host.macs.any(mac=mac_of(number)))).one()
        session.expunge(host)
        return host


def events_of(database: Database, number: int, kind: str) -> list[str]:
    host = host_row(database, number)
    with database.scope(write=False) as session:
        return list(
            session.scalars(
                select(Event.message)
                .where(Event.host_id == host.id, Event.kind == kind)
                .order_by(Event.id)
            )
        )


def post_register(
    base_url: str, token: str | None, body: Any, timeout: float = 120
) -> tuple[int, dict[str, Any]]:
    """One registration as the first-boot agent sends it: status and JSON answer."""
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(
        f"{base_url}/api/v1/register",
        data=json.dumps(body).encode(),
        headers=headers,
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@contextmanager
def rack_inventory(tmp_path: Path, *, profiles: tuple[str, ...] = ()) -> Iterator[Database]:
    """A migrated SQLite inventory in ``tmp_path`` with the pool ``rack1`` and ``profiles``."""
    db = Database(f"sqlite:///{tmp_path / 'inventory.sqlite3'}")
    db.migrate()
    with db.scope() as session:
        create_pool(session, "rack1")
        for name in profiles:
            create_profile(session, name)
    try:
        yield db
    finally:
        db.dispose()


@contextmanager
def serving(tmp_path: Path, database: Database) -> Iterator[str]:
    """The whole web application on a real socket over ``database``; its base URL."""
    with running_server(create_app(Settings(data_dir=tmp_path), database=database)) as running:
        yield running.url
