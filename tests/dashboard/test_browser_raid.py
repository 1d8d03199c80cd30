"""A host's software RAID on the dashboard, in a real browser (headless Chromium, Selenium)
against ``xcp-provision serve``: the host installs and registers through the real host API,
then reports its mirror with the report token its registration gave, as the first-boot agent's
``--report`` does. The hosts list's RAID column and the host page's RAID card follow the
reports live, and the mirror degrading is a warning in the host's timeline.

Screenshots go to ``results/dashboard/``: raid-hosts.png, raid-host.png.
"""

from __future__ import annotations

from typing import Any

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions as ec

from tests.dashboard.test_browser import (
    CHROMEDRIVER,
    CHROMIUM,
    RESULTS,
    Server,
    browser,
    server,
    text_of,
    wait,
)
from tests.support.registering import facts, mac_of

__all__ = ["browser", "server"]  # test_browser's fixtures, a server and a browser of our own
pytestmark = pytest.mark.skipif(
    not (CHROMIUM.exists() and CHROMEDRIVER.exists()),
    reason="needs Debian's chromium and chromium-driver (scripts/test-packages.txt)",
)


def mirror(members: int, **changes: Any) -> dict[str, Any]:
    return {"raid": [{"name": "md127", "level": "raid1", "members": members, "expected": 2,
                      "array_state": "clean", "sync_action": "idle", "progress": None,
                      **changes}]}  # fmt: skip


def test_the_mirror_degrading_shows_on_the_hosts_list_and_the_host_page(
    server: Server, browser: WebDriver
) -> None:
    server.call("POST", "/api/v1/pools", {"name": "rack1"})
    added = {"mac": mac_of(61), "hostname": "node0061", "profile": "demo", "pool": "rack1"}
    status, host = server.call("POST", "/api/v1/hosts", added)
    assert status == 201, host
    token = server.boot(mac_of(61))
    assert server.call("POST", "/api/v1/installs/done", token=token)[0] == 200
    status, answer = server.call("POST", "/api/v1/register", facts(61), token=token)
    assert status == 200, answer
    report_token = answer["report_token"]

    browser.get(f"{server.url}/ui/login")
    wait(browser).until(ec.presence_of_element_located((By.ID, "token"))).send_keys(
        server.api_token
    )
    browser.find_element(By.CSS_SELECTOR, "main form button[type=submit]").click()
    wait(browser).until(ec.presence_of_element_located((By.ID, "host-rows")))
    row = f"#host-{host['id']}"
    assert text_of(browser, f"{row} td.raid") == "—"  # nothing reported yet

    # Reports arrive while the page stays open: the row follows them.
    browser.execute_script("window.notReloaded = true;")
    assert server.call("POST", "/api/v1/health", mirror(2), token=report_token)[0] == 200
    wait(browser).until(
        ec.text_to_be_present_in_element((By.CSS_SELECTOR, f"{row} .raid-clean"), "clean")
    )
    assert server.call("POST", "/api/v1/health", mirror(1), token=report_token)[0] == 200
    wait(browser).until(
        ec.text_to_be_present_in_element((By.CSS_SELECTOR, f"{row} .raid-degraded"), "degraded")
    )
    cell = browser.find_element(By.CSS_SELECTOR, f"{row} .raid-degraded")
    assert cell.get_attribute("title") == "degraded: md127 raid1 1 of 2"
    assert browser.execute_script("return window.notReloaded === true;")
    RESULTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(RESULTS / "raid-hosts.png"))

    # The host page: the RAID card and the warning, then the rebuild as it goes.
    browser.find_element(By.LINK_TEXT, "node0061").click()
    card = wait(browser).until(ec.presence_of_element_located((By.ID, "raid")))
    assert card.get_attribute("data-raid-state") == "degraded"
    cells = [c.text for c in card.find_elements(By.CSS_SELECTOR, "#raid-md127 td")]
    assert cells == ["md127", "raid1", "degraded", "1 of 2", "clean", "idle"]
    warning = browser.find_element(By.CSS_SELECTOR, "#host-live .timeline li.kind-raid-warning")
    assert "md127 raid1 degraded, 1 of 2" in warning.text
    browser.save_screenshot(str(RESULTS / "raid-host.png"))
    browser.execute_script("window.notReloaded = true;")
    rebuild = mirror(1, sync_action="recover", progress=37.5)
    assert server.call("POST", "/api/v1/health", rebuild, token=report_token)[0] == 200
    wait(browser).until(
        ec.text_to_be_present_in_element((By.CSS_SELECTOR, "#raid-md127"), "recover · 37.5%")
    )
    assert text_of(browser, "#raid-md127 .raid") == "resyncing"
    assert browser.execute_script("return window.notReloaded === true;")
