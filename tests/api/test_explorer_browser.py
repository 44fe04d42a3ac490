"""The Incident Explorer in Debian's Chromium, driven by Playwright, over data from real runs: `bindrift demo`
(scanner and agent scenarios), then `bindrift watch --serve` (the API in the agent's process) watching a
private tmpfs while a process writes a foreign binary whose path and arguments hold HTML and script.
Nothing of it may execute; list, incident, mute and a read-only session are clicked through."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from tests.conftest import PROJECT

BINDRIFT = str(Path(sys.executable).with_name("bindrift"))
CHROMIUM = "/usr/bin/chromium"
ADMIN = "admin-browser-token-0123456789"
READ = "read-browser-token-0123456789"
PAYLOAD_NAME = '<img src=x onerror="window.__pwned=1">drop'
PAYLOAD_ARG = "<script>window.__pwned=2</script><b onmouseover=alert(1)>x</b>"
WRITE = "import sys; open(sys.argv[1], 'wb').write(open(sys.argv[2], 'rb').read())"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]  # fmt: skip
pytestmark = [pytest.mark.slow, pytest.mark.skipif(os.geteuid() != 0, reason="the agent needs root")]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str, token: str = ADMIN) -> Any:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return msgspec.json.decode(response.read())


@pytest.fixture
def screenshots() -> Path:
    folder = Path(os.environ.get("BINDRIFT_SCREENSHOTS", PROJECT / ".cache" / "screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def explorer(tmpfs: Path, tmp_path: Path, test_binaries: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """A store filled by `bindrift demo` and the agent, served by `bindrift watch --serve`; yields the base URL and
    the finding whose path and arguments carry the payload."""
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail("Debian's chromium is not installed")
        pytest.skip("Debian's chromium is not installed")
    db = f"sqlite:///{tmp_path / 'explorer.db'}"
    env = {**os.environ, "BINDRIFT_ADMIN_TOKEN": ADMIN, "BINDRIFT_READ_TOKEN": READ, "XDG_DATA_HOME": str(tmp_path)}
    demo = subprocess.run([BINDRIFT, "demo", "--db", db], env=env, capture_output=True, text=True, timeout=120,
                          check=False)  # fmt: skip
    assert demo.returncode == 0, demo.stderr
    assert "the scanner stored 5 finding(s)" in demo.stderr and "the agent raised 2 finding(s)" in demo.stderr
    assert "(localhost/bindrift-demo:latest) watched by the agent: 3 finding(s)" in demo.stderr, demo.stderr
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "watch.log"
    with log.open("w") as err:
        command = [BINDRIFT, "watch", "--db", db, "--host-path", str(tmpfs), "--duration", "180", "--serve",
                   f"127.0.0.1:{port}"]  # fmt: skip
        agent = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=err)
    try:
        deadline = time.monotonic() + 30
        while f"watching {tmpfs}" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert f"watching {tmpfs}" in log.read_text(), log.read_text()
        arm64 = test_binaries / "busybox-static-arm64" / "bin" / "busybox"
        subprocess.run([sys.executable, "-c", WRITE, str(tmpfs / PAYLOAD_NAME), str(arm64), PAYLOAD_ARG], check=True,
                       timeout=30)  # fmt: skip
        found: list[dict[str, Any]] = []
        while not found and time.monotonic() < deadline:
            with contextlib.suppress(OSError):  # the server may not listen yet
                found = _get(f"{base}/api/v1/findings?q=onerror")["items"]
            time.sleep(0.1)
        assert len(found) == 1, log.read_text()
        yield base, found[0]
    finally:
        agent.terminate()
        agent.wait(timeout=30)


def test_click_through_list_incident_mute_and_nothing_executes(
    explorer: tuple[str, dict[str, Any]], screenshots: Path
) -> None:
    from playwright.sync_api import sync_playwright

    base, payload = explorer
    assert payload["file"]["path"].endswith(PAYLOAD_NAME) and payload["writer"]["args"][-1] == PAYLOAD_ARG
    stats = _get(f"{base}/api/v1/stats")
    dialogs: list[str] = []
    errors: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(base + "/")
            page.fill("#token", ADMIN)
            page.click("button[type=submit]")
            page.wait_for_selector("#incidents")
            assert page.text_content("#who") == "admin (admin)"
            for severity, count in stats["by_severity"].items():
                assert page.text_content(f'#severity-counts [data-severity="{severity}"] b') == str(count)
            page.wait_for_selector(".chart svg rect")
            page.screenshot(path=str(screenshots / "explorer-list.png"), full_page=True)

            page.click(f'#incidents tr[data-id="{payload["incident_id"]}"]')
            page.wait_for_selector("#timeline")
            page.click(f'#timeline button[data-id="{payload["id"]}"]')
            page.wait_for_selector(f'#finding[data-id="{payload["id"]}"]')
            assert PAYLOAD_NAME in (page.text_content("#summary") or "")
            assert PAYLOAD_ARG in (page.text_content("#writer-lineage") or "")
            assert PAYLOAD_NAME in (page.text_content("#chain") or "")
            assert "aarch64" in (page.text_content("#file") or "") and "A1" in (page.text_content("#checks") or "")
            vt = page.get_attribute("#indicators a", "href")
            assert vt == f"https://www.virustotal.com/gui/file/{payload['file']['sha256']}"
            assert page.get_attribute("#techniques a", "href") == "https://attack.mitre.org/techniques/T1105/"
            assert (
                page.locator("img[src=x]").count() == 0
                and page.locator("#main script, #main b[onmouseover]").count() == 0
            )
            page.screenshot(path=str(screenshots / "explorer-incident.png"), full_page=True)

            page.fill("#state-reason", "triaged in the browser test")
            page.click("#mute")
            page.wait_for_selector("#state-value:text('muted')")
            assert "muted by admin: triaged in the browser test" in (page.text_content("#history") or "")
            page.screenshot(path=str(screenshots / "explorer-muted.png"), full_page=True)
            stored = _get(f"{base}/api/v1/findings/{payload['id']}", READ)
            assert stored["state"] == "muted" and stored["state_history"][-1]["by"] == "admin"

            page.click("#logout")
            page.fill("#token", READ)
            page.click("button[type=submit]")  # signing in again stays on the incident page
            page.wait_for_selector(f'#finding[data-id="{payload["id"]}"]')
            assert page.text_content("#who") == "reader (read)"
            assert page.locator("#mute, #resolve, #reopen").count() == 0
            assert "Read-only token" in (page.text_content("#state") or "")

            page.goto(f"{base}/#/?view=findings&q=dropbear")
            page.wait_for_selector("#findings")
            expected = _get(f"{base}/api/v1/findings?q=dropbear", READ)["total"]
            assert page.locator("#findings tbody tr").count() == expected >= 1
            assert page.evaluate("typeof window.__pwned") == "undefined"
            assert not any(token in page.url for token in (ADMIN, READ))
        finally:
            browser.close()
    assert dialogs == [] and errors == []
