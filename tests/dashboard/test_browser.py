"""The dashboard in a real browser (Debian's headless Chromium driven by Selenium) against
``xcp-provision serve`` run as operators run it: sign in with a token made by ``tokens create``,
watch an install progress live while the test posts the installer's events through the real
host API, see the pool page after real registrations, reinstall a host.

Screenshots are kept in ``results/dashboard/``: hosts.png (the main page during an install),
host.png and pools.png.
"""

from __future__ import annotations

import json
import re
import shutil
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import Select, WebDriverWait

from common import runner
from tests.support.registering import facts, mac_of
from tests.support.serve import EXE, serve_process

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
RESULTS = Path(__file__).resolve().parents[2] / "results" / "dashboard"
pytestmark = pytest.mark.skipif(
    not (CHROMIUM.exists() and CHROMEDRIVER.exists()),
    reason="needs Debian's chromium and chromium-driver (scripts/test-packages.txt)",
)


@dataclass(frozen=True)
class Server:
    url: str
    data_dir: Path
    api_token: str

    def call(
        self, method: str, path: str, body: Any = None, token: str | None = None
    ) -> tuple[int, Any]:
        request = urllib.request.Request(
            self.url + path,
            method=method,
            data=json.dumps(body).encode() if body is not None else None,
            headers={
                "Content-Type": "application/json",
                "Authorization": f"Bearer {token or self.api_token}",
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                raw = response.read()
                status = response.status
        except urllib.error.HTTPError as error:
            raw, status = error.read(), error.code
        text = raw.decode()
        return status, json.loads(text) if text.strip().startswith(("{", "[")) else text

    def boot(self, mac: str) -> str:
        """PXE-boot as the host would (iPXE asks /boot/ipxe); its install token."""
        status, script = self.call("GET", f"/boot/ipxe?mac={mac}")
        assert status == 200
        match = re.search(r"token=(xpi_[A-Za-z0-9_-]+)", script)
        assert match, script
        return match.group(1)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data = tmp_path_factory.mktemp("dashboard") / "data"
    with serve_process(data, "--demo", "--tftp-port", "0", "--no-dhcp") as (url, _proc):
        made = runner.run([EXE, "tokens", "create", "browser", "--data-dir", data])
        yield Server(url, data, made.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebDriver]:
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    profile = tmp_path_factory.mktemp("chromium-profile")
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--window-size=1400,900",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def wait(driver: WebDriver, seconds: float = 20) -> WebDriverWait:
    return WebDriverWait(driver, seconds, poll_frequency=0.2)


def text_of(driver: WebDriver, css: str) -> str:
    return driver.find_element(By.CSS_SELECTOR, css).text


def shown(driver: WebDriver, css: str) -> WebElement:
    """The element once the page that a click asked for has it: a loaded machine may still
    show the page before."""
    return wait(driver).until(ec.presence_of_element_located((By.CSS_SELECTOR, css)))


def test_operator_watches_an_install_then_reinstalls(server: Server, browser: WebDriver) -> None:
    assert server.call("POST", "/api/v1/pools", {"name": "rack1"})[0] == 201
    hosts = {}
    for number in (1, 2):
        status, host = server.call(
            "POST",
            "/api/v1/hosts",
            {
                "mac": mac_of(number),
                "hostname": f"node{number:04d}",
                "profile": "demo",
                "pool": "rack1",
            },
        )
        assert status == 201, host
        hosts[number] = host["id"]

    # Signed out, the dashboard sends the browser to the login form.
    browser.get(f"{server.url}/ui/")
    wait(browser).until(ec.url_contains("/ui/login"))
    browser.find_element(By.ID, "token").send_keys("xpa_wrong")
    browser.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    assert "not valid" in shown(browser, ".flash.error").text
    browser.find_element(By.ID, "token").send_keys(server.api_token)
    browser.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    wait(browser).until(ec.presence_of_element_located((By.ID, "host-rows")))
    assert browser.current_url == f"{server.url}/ui/"
    assert "node0001" in text_of(browser, f"#host-{hosts[1]}")

    # The host boots and its installer reports, while the page stays open.
    token = server.boot(mac_of(1))
    browser.execute_script("window.notReloaded = true;")
    row = f"#host-{hosts[1]}"
    for step, percent in (("partitioning", 15), ("laying down dom0", 60)):
        status, _ = server.call(
            "POST", "/api/v1/installs/events", {"step": step, "percent": percent}, token=token
        )
        assert status == 202
        wait(browser).until(
            ec.text_to_be_present_in_element(
                (By.CSS_SELECTOR, f"{row} .step"), f"{step} · {percent}%"
            )
        )
        bar = browser.find_element(By.CSS_SELECTOR, f"{row} .progress")
        assert bar.get_attribute("aria-valuenow") == str(percent)
        assert text_of(browser, f"{row} .state") == "installing"
    assert browser.execute_script("return window.notReloaded === true;")
    RESULTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(RESULTS / "hosts.png"))
    print(f"dashboard screenshot: {RESULTS / 'hosts.png'}")

    # The host page follows the same install live, then build-done and registration.
    browser.get(f"{server.url}/ui/hosts/{hosts[1]}")
    browser.execute_script("window.notReloaded = true;")
    server.call(
        "POST", "/api/v1/installs/events", {"step": "bootloader", "percent": 90}, token=token
    )
    wait(browser).until(
        ec.text_to_be_present_in_element(
            (By.CSS_SELECTOR, "#host-live .timeline li:first-child"), "bootloader (90%)"
        )
    )
    assert server.call("POST", "/api/v1/installs/done", token=token)[0] == 200
    wait(browser).until(
        ec.text_to_be_present_in_element((By.CSS_SELECTOR, "#host-live .state"), "installed")
    )
    assert server.call("POST", "/api/v1/register", facts(1), token=token)[0] == 200
    wait(browser).until(
        ec.text_to_be_present_in_element((By.CSS_SELECTOR, "#host-live .state"), "in-pool")
    )
    assert browser.execute_script("return window.notReloaded === true;")
    assert "INSTALL-TOKEN-HIDDEN" in text_of(browser, "#answerfile")

    # A second host installs with a tagged management interface: the pool refuses it.
    second = server.boot(mac_of(2))
    server.call("POST", "/api/v1/installs/events", {"step": "partitioning"}, token=second)
    server.call("POST", "/api/v1/installs/done", token=second)
    status, answer = server.call(
        "POST", "/api/v1/register", facts(2, management_vlan=10), token=second
    )
    assert (status, answer["state"]) == (200, "registered")

    browser.find_element(By.LINK_TEXT, "Pools").click()
    pool = shown(browser, "#pool-rack1")
    assert "Master: node0001 192.0.2.1" in pool.text
    assert "Members (1)" in pool.text
    refused = pool.find_element(By.CSS_SELECTOR, ".refused-list").text
    assert "node0002" in refused
    assert "Management interface is VLAN 10, the master's is untagged." in refused
    browser.save_screenshot(str(RESULTS / "pools.png"))

    # The master's page shows the facts its first boot reported.
    pool.find_element(By.LINK_TEXT, "node0001").click()
    facts_card = wait(browser).until(ec.presence_of_element_located((By.ID, "facts")))
    assert "management_ip\n192.0.2.1" in facts_card.text
    browser.save_screenshot(str(RESULTS / "host.png"))

    # Reinstall the refused host from its page (after the confirmation dialog).
    browser.get(f"{server.url}/ui/hosts/{hosts[2]}")
    wait(browser).until(ec.presence_of_element_located((By.ID, "reinstall"))).click()
    wait(browser).until(ec.alert_is_present()).accept()
    wait(browser).until(
        ec.text_to_be_present_in_element(
            (By.CSS_SELECTOR, ".flash.ok"), "node0002 will reinstall at its next network boot."
        )
    )
    assert text_of(browser, "#host-live .state") == "ready"
    assert "reinstall requested from the dashboard by browser" in text_of(
        browser, "#host-live .timeline li:first-child"
    )
    status, host = server.call("GET", f"/api/v1/hosts/{hosts[2]}")
    assert host["state"] == "ready"


def test_operator_assigns_a_discovered_host(server: Server, browser: WebDriver) -> None:
    """A machine nobody registered PXE-boots; the operator gives it a profile and a pool."""
    mac = mac_of(40)
    status, script = server.call("GET", f"/boot/ipxe?mac={mac}")
    assert status == 200 and "assign it a profile" in script
    browser.get(f"{server.url}/ui/")  # signed in by the test above, same browser session
    notice = wait(browser).until(ec.presence_of_element_located((By.CSS_SELECTOR, ".notice")))
    assert "1 discovered host waiting for a profile." in notice.text
    notice.find_element(By.TAG_NAME, "a").click()
    row = wait(browser).until(
        ec.presence_of_element_located((By.XPATH, f"//tr[td[contains(., '{mac}')]]"))
    )
    Select(row.find_element(By.NAME, "profile")).select_by_visible_text("demo")
    Select(row.find_element(By.NAME, "pool")).select_by_visible_text("rack1")
    row.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    flash = wait(browser).until(ec.presence_of_element_located((By.CSS_SELECTOR, ".flash.ok")))
    assert "profile demo, pool rack1; it is ready." in flash.text
    assert mac not in browser.find_element(By.TAG_NAME, "main").text
    # Its next boot runs the installer.
    assert "token=xpi_" in server.call("GET", f"/boot/ipxe?mac={mac}")[1]


def sign_in(server: Server, browser: WebDriver, token: str) -> None:
    browser.get(f"{server.url}/ui/login")
    shown(browser, "#token").send_keys(token)
    browser.find_element(By.CSS_SELECTOR, "main form button[type=submit]").click()
    wait(browser).until(ec.presence_of_element_located((By.ID, "host-rows")))


def audit_rows(browser: WebDriver) -> list[list[str]]:
    """The audit page's rows, reached from the nav link, as the cells' texts."""
    browser.find_element(By.LINK_TEXT, "Audit").click()
    shown(browser, "#audit")
    return [
        [cell.text for cell in row.find_elements(By.TAG_NAME, "td")]
        for row in browser.find_elements(By.CSS_SELECTOR, "#audit tr.audit-row")
    ]


def test_viewer_sees_no_actions_and_the_audit_shows_every_change(
    server: Server, browser: WebDriver
) -> None:
    """A viewer token signs in, finds no button to press, is refused a forged action; an admin
    then reinstalls the host, and the Audit page shows both, and no secret."""
    secret = "Hunter2-dashboard-s3cret"  # what the audit must never show
    made = runner.run(
        [EXE, "tokens", "create", "auditor", "--role", "viewer", "--data-dir", server.data_dir]
    )
    viewer = made.stdout.strip().splitlines()[-1]
    status, profile = server.call(
        "POST", "/api/v1/profiles", {"name": "vault", "variables": {"root_password": secret}}
    )
    assert status == 201, profile
    status, host = server.call(
        "POST", "/api/v1/hosts", {"mac": mac_of(60), "hostname": "node0060", "profile": "demo"}
    )
    assert status == 201, host

    sign_in(server, browser, viewer)
    assert text_of(browser, "#read-only") == "read-only"
    browser.get(f"{server.url}/ui/hosts/{host['id']}")
    shown(browser, "#host-live")
    assert not browser.find_elements(By.ID, "reinstall")
    assert not browser.find_elements(By.ID, "remove")
    assert not browser.find_elements(By.CSS_SELECTOR, "form.assign")
    browser.find_element(By.LINK_TEXT, "Discovered").click()
    shown(browser, "table.hosts")
    assert not browser.find_elements(By.CSS_SELECTOR, "form.assign")

    # The form a viewer cannot see, posted anyway from its own signed-in page (CSRF included).
    browser.execute_script(
        """const form = document.createElement('form');
        form.method = 'post';
        form.action = arguments[0];
        const csrf = document.querySelector('input[name=csrf]').cloneNode();
        form.appendChild(csrf);
        document.body.appendChild(form);
        form.submit();""",
        f"/ui/hosts/{host['id']}/reinstall",
    )
    refusal = wait(browser).until(
        ec.text_to_be_present_in_element((By.CSS_SELECTOR, "main .card"), "403")
    )
    assert refusal
    assert "role is viewer" in text_of(browser, "main .card")
    assert server.call("GET", f"/api/v1/hosts/{host['id']}")[1]["state"] == "ready"
    # A viewer reads the audit too: its own refusal is in it.
    rows = audit_rows(browser)
    assert rows[0][1:4] == ["auditor", "hosts.reinstall", str(host["id"])]
    assert rows[0][5].startswith("403 your API token's role is viewer")

    # Signed out, then in again as the admin token: the actions are there and work.
    browser.find_element(By.CSS_SELECTOR, ".who button").click()
    wait(browser).until(ec.url_contains("/ui/login"))
    sign_in(server, browser, server.api_token)
    assert not browser.find_elements(By.ID, "read-only")
    browser.get(f"{server.url}/ui/hosts/{host['id']}")
    wait(browser).until(ec.presence_of_element_located((By.ID, "reinstall"))).click()
    wait(browser).until(ec.alert_is_present()).accept()
    wait(browser).until(
        ec.text_to_be_present_in_element((By.CSS_SELECTOR, ".flash.ok"), "will reinstall")
    )
    rows = audit_rows(browser)
    browser.save_screenshot(str(RESULTS / "audit.png"))
    assert rows[0][1:6] == ["browser", "hosts.reinstall", str(host["id"]), "127.0.0.1", "ok"]
    assert rows[1][1:4] == ["auditor", "hosts.reinstall", str(host["id"])]
    api_rows = [r for r in rows if r[2] == "POST /api/v1/profiles" and r[3] == "vault"]
    assert api_rows and api_rows[0][1] == "browser" and api_rows[0][5] == "ok"
    assert api_rows[0][6] == "name, variables"
    assert any(r[1].startswith("cli:") and r[2:4] == ["tokens.create", "auditor"] for r in rows)
    assert secret[:8] not in browser.page_source
    assert viewer not in browser.page_source
