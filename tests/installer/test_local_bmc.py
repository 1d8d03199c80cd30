"""The installer reads its own machine's BMC address, from what a real BMC (ipmi_sim) answers
to ``ipmitool lan print``, and reports it with its progress; no BMC is no error."""

from __future__ import annotations

import io
import json
from pathlib import Path

from support.bmc_sim import running_ipmi_sim

from installer.local_bmc import BmcSighting, parse_lan_print, probe
from installer.progress import JsonLinesReporter, Progress, Step


def test_a_configured_bmc_is_read_from_ipmitool(tmp_path: Path) -> None:
    with running_ipmi_sim(tmp_path / "bmc") as sim:
        sim.set_lan(ip_addr="10.20.30.40", ip_addr_src="static", mac_addr="52:54:00:AB:CD:EF")
        printed = sim.ipmitool("lan", "print", "1")
        assert printed.returncode == 0, printed.stderr
        assert parse_lan_print(printed.stdout) == BmcSighting(
            "10.20.30.40", "static", "52:54:00:ab:cd:ef", 1
        )
        sim.set_lan(ip_addr="10.20.30.41", ip_addr_src="dhcp", mac_addr="00:00:00:00:00:00")
        dhcp = parse_lan_print(sim.ipmitool("lan", "print", "1").stdout)
        assert dhcp == BmcSighting("10.20.30.41", "dhcp", None, 1)


def test_an_unconfigured_bmc_is_no_sighting(tmp_path: Path) -> None:
    with running_ipmi_sim(tmp_path / "bmc") as sim:
        printed = sim.ipmitool("lan", "print", "1")
        assert "0.0.0.0" in printed.stdout
        assert parse_lan_print(printed.stdout) is None
    assert parse_lan_print("") is None


def test_a_machine_without_a_bmc_device_is_no_sighting(tmp_path: Path) -> None:
    assert probe(tmp_path / "ipmi0") is None


def test_the_sighting_goes_out_with_the_progress_once() -> None:
    out = io.StringIO()
    progress = Progress((Step("prepare", 1), Step("write", 1)), [JsonLinesReporter(out)])
    progress.start("prepare")
    progress.bmc_seen(BmcSighting("10.20.30.40", "static", "52:54:00:ab:cd:ef"))
    progress.update("write", 0.5)
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [("bmc" in line) for line in lines] == [False, True, False]
    assert lines[1]["step"] == "prepare"
    assert lines[1]["bmc"] == {
        "address": "10.20.30.40", "source": "static", "mac": "52:54:00:ab:cd:ef", "channel": 1
    }
    assert "10.20.30.40" in lines[1]["message"]
