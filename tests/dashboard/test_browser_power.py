"""Power and rolling reinstalls in a real browser (headless Chromium, Selenium) against
``xcp-provision serve`` and real IPMI BMCs (ipmi_sim): the power column fills in after the
page is drawn, even with a BMC that never answers; an admin powers a host on and reinstalls it
with power from its page; a pool is reinstalled one host at a time from the Pools page, and
the roll's page follows it live while the hosts install.

Screenshots go to ``results/dashboard/``: power-hosts.png, roll.png.
"""

from __future__ import annotations

import contextlib
import json
import re
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions as ec
from support.bmc_sim import IpmiSim, free_udp_port, running_ipmi_sim

from common import runner
from tests.dashboard.test_browser import CHROMEDRIVER, CHROMIUM, RESULTS, browser, wait
from tests.support.registering import facts, mac_of
from tests.support.serve import EXE, serve_process

__all__ = ["browser"]  # the module's browser fixture, shared
pytestmark = pytest.mark.skipif(
    not (CHROMIUM.exists() and CHROMEDRIVER.exists()),
    reason="needs Debian's chromium and chromium-driver (scripts/test-packages.txt)",
)


class Api:
    def __init__(self, url: str, token: str) -> None:
        self.url, self.token = url, token

    def call(self, method: str, path: str, body: Any = None, token: str | None = None) -> Any:
        request = urllib.request.Request(
            self.url + path, method=method,
            data=json.dumps(body).encode() if body is not None else None,
            headers={"Content-Type": "application/json",
                     "Authorization": f"Bearer {token or self.token}"},
        )  # fmt: skip
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                text = response.read().decode()
        except urllib.error.HTTPError as error:
            raise AssertionError(f"{method} {path}: {error.code} {error.read()!r}") from None
        return json.loads(text) if text.strip().startswith(("{", "[")) else text

    def install(self, number: int) -> None:
        """What the host's installer and first boot do once its BMC restarted it."""
        script = self.call("GET", f"/boot/ipxe?mac={mac_of(number)}")
        token = re.search(r"token=(xpi_[A-Za-z0-9_-]+)", script).group(1)
        self.call("POST", "/api/v1/installs/done", token=token)
        self.call("POST", "/api/v1/register", facts(number), token=token)


@pytest.fixture(scope="module")
def rack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Api, list[IpmiSim]]]:
    root = tmp_path_factory.mktemp("power")
    with contextlib.ExitStack() as stack:
        sims = [stack.enter_context(running_ipmi_sim(root / f"bmc{n}")) for n in (1, 2, 3)]
        url, _proc = stack.enter_context(
            serve_process(root / "data", "--demo", "--tftp-port", "0", "--no-dhcp")
        )
        made = runner.run([EXE, "tokens", "create", "rack-admin", "--data-dir", root / "data"])
        api = Api(url, made.stdout.strip().splitlines()[-1])
        api.call("POST", "/api/v1/pools", {"name": "rack9"})
        for number in (101, 102, 103, 104):
            body = {"mac": mac_of(number), "hostname": f"node{number:04d}", "profile": "demo"}
            if number < 103:
                body["pool"] = "rack9"
            api.call("POST", "/api/v1/hosts", body)
            port = sims[number - 101].port if number < 104 else free_udp_port()  # 104: dead
            api.call("PUT", f"/api/v1/hosts/node{number:04d}/bmc",
                     {"driver": "ipmi", "address": "127.0.0.1", "port": port,
                      "username": "admin", "password": "ipmi-Secret-7"})  # fmt: skip
        api.install(101)  # the pool's master
        api.install(102)
        yield api, sims


# Read in one go in the page: the rows are swapped for fresh ones every two seconds.
_ROW_CELL = """const [name, css] = arguments;
const row = [...document.querySelectorAll('tr')].find(
    r => r.querySelector('td a') && r.querySelector('td a').textContent.trim() === name);
const cell = row && (css ? row.querySelector(css) : row);
return cell ? (css ? cell.textContent.trim() : cell.dataset.rollStatus) : null;"""


def _cell(driver: WebDriver, name: str) -> str:
    return driver.execute_script(_ROW_CELL, name, "td.power")


def test_power_column_buttons_and_a_pool_rolled_one_at_a_time(
    rack: tuple[Api, list[IpmiSim]], browser: WebDriver
) -> None:
    api, sims = rack
    browser.get(f"{api.url}/ui/login")
    wait(browser).until(ec.presence_of_element_located((By.ID, "token"))).send_keys(api.token)
    browser.find_element(By.CSS_SELECTOR, "main form button[type=submit]").click()
    wait(browser).until(ec.presence_of_element_located((By.ID, "host-rows")))

    # Drawn at once: the dead BMC (node0104) has not answered yet, and holds nothing up.
    assert _cell(browser, "node0104") == "…"
    wait(browser).until(lambda d: _cell(d, "node0101") == "off" and _cell(d, "node0103") == "off")
    assert _cell(browser, "node0104") == "…"  # still asking, 6 s at most
    wait(browser, 30).until(lambda d: _cell(d, "node0104") == "unknown")
    RESULTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(RESULTS / "power-hosts.png"))

    # node0103's page: power it on, then reinstall it with power.
    browser.find_element(By.LINK_TEXT, "node0103").click()
    wait(browser).until(ec.presence_of_element_located((By.ID, "power-on"))).click()
    wait(browser).until(ec.text_to_be_present_in_element(
        (By.CSS_SELECTOR, ".flash.ok"), "node0103: power on acknowledged by its BMC."))  # fmt: skip
    assert sims[2].power() == "on"
    wait(browser).until(ec.text_to_be_present_in_element((By.ID, "power-state"), "on"))
    browser.find_element(By.ID, "reinstall-power").click()
    wait(browser).until(ec.alert_is_present()).accept()
    # Three IPMI commands in a row (boot device, power state, reset), each retried by pyghmi
    # after a lost datagram: on a loaded machine more than the 20 s of one page step.
    wait(browser, 60).until(ec.text_to_be_present_in_element(
        (By.CSS_SELECTOR, ".flash.ok"), "node0103 reinstalls now"))  # fmt: skip
    assert (sims[2].boot(), sims[2].resets()) == ("pxe", 1)  # on already: a hard reset
    assert browser.find_element(By.CSS_SELECTOR, "#host-live .state").text == "ready"

    # The Pools page: reinstall rack9 one host at a time, through the BMCs.
    browser.find_element(By.LINK_TEXT, "Pools").click()
    field = wait(browser).until(ec.presence_of_element_located((By.ID, "max-parallel-rack9")))
    field.clear()
    field.send_keys("1")
    browser.find_element(By.ID, "reinstall-pool-rack9").click()
    wait(browser).until(ec.alert_is_present()).accept()
    wait(browser).until(ec.presence_of_element_located((By.ID, "roll-live")))
    browser.execute_script("window.notReloaded = true;")

    def host_status(name: str) -> Any:
        return lambda driver: driver.execute_script(_ROW_CELL, name, "")

    # The member first, the master (node0101) last; started by the server's roll driver.
    wait(browser).until(lambda d: host_status("node0102")(d) == "running")
    assert host_status("node0101")(browser) == "waiting"
    assert sims[1].boot() == "pxe" and sims[0].boot() == ""
    api.install(102)
    wait(browser, 30).until(lambda d: host_status("node0101")(d) == "running")
    assert host_status("node0102")(browser) == "done"
    assert sims[0].boot() == "pxe"
    api.install(101)
    wait(browser, 30).until(ec.text_to_be_present_in_element((By.ID, "roll-status"), "done"))
    assert "2 done · 0 running · 0 waiting · 0 failed" in browser.find_element(
        By.ID, "roll-counts").text  # fmt: skip
    assert browser.execute_script("return window.notReloaded === true;")
    browser.save_screenshot(str(RESULTS / "roll.png"))
    browser.find_element(By.LINK_TEXT, "Reinstalls").click()
    assert "done" in wait(browser).until(
        ec.presence_of_element_located((By.ID, "roll-1"))).text  # fmt: skip

    actions = [(r["actor"], r["action"]) for r in api.call("GET", "/api/v1/audit")["audit"]]
    for wanted in ("hosts.power", "hosts.reinstall", "reinstalls.create",
                   "reinstalls.host-start", "reinstalls.finish"):  # fmt: skip
        assert ("rack-admin", wanted) in actions, wanted
