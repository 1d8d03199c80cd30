"""``serve --bind ::`` answers both families: a site whose hosts network-boot over IPv4 and are
then managed over IPv6 reaches one server. HTTP listens on IPv6's wildcard for IPv4 too, the
IPv4-only UDP services (TFTP here) on IPv4's, and an IPv4 client is its IPv4 address wherever an
address counts (the install token is bound to it), not ``::ffff:127.0.0.1``."""

from __future__ import annotations

import socket
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from common import runner, wire
from pxe.store.hosts import add_host, get_host
from pxe.store.profiles import create_profile
from pxe.store.tokens import issue_install_token
from tests.support.registering import mac_of, rack_inventory
from tests.support.serve import free_port, serve_process


@pytest.mark.parametrize("workers", ["1", "2"], ids=["in-process", "worker-processes"])
def test_one_server_for_both_families(tmp_path: Path, workers: str) -> None:
    data = tmp_path / "data"
    tftp_port = free_port(socket.SOCK_DGRAM)
    with rack_inventory(data) as database:
        with database.scope() as session:
            create_profile(session, "rack", release="r1", template="fresh-dhcp",
                           variables={"primary_disk": "sda"})  # fmt: skip
            host = add_host(session, macs=[mac_of(1)], hostname="node1", profile="rack")
            token = issue_install_token(host)
            host_id = host.id
        served = serve_process(data, "--tftp-port", str(tftp_port), "--no-dhcp",
                               "--workers", workers, bind="::")  # fmt: skip
        with served as (base, _):
            port = base.rsplit(":", 1)[1]
            v4, v6 = f"http://127.0.0.1:{port}", f"http://[::1]:{port}"
            for url in (v4, v6):
                with urllib.request.urlopen(f"{url}/healthz", timeout=10) as response:
                    assert response.status == 200
            fetched = runner.run(
                ["curl", "-sS", "--max-time", "10", f"tftp://127.0.0.1:{tftp_port}/boot.ipxe"]
            )
            assert fetched.stdout.startswith("#!ipxe")

            with urllib.request.urlopen(wire.answerfile_url(v4, host_id, token), timeout=10) as r:
                assert f"<xp:server-url>{v4}</xp:server-url>" in r.read().decode()
            with database.scope(write=False) as session:
                assert get_host(session, host_id).token_bound_addr == "127.0.0.1"
            # The same token from IPv6 loopback is another address: refused.
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(wire.answerfile_url(v6, host_id, token), timeout=10)
            assert refused.value.code == 403
            assert "not ::1" in refused.value.read().decode()
