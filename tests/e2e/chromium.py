"""A real browser for the tests: Debian's Chromium, headless, driven through its chromedriver by selenium.

Nothing is downloaded: selenium is told where Debian's ``chromium`` and ``chromedriver`` are. Every instance has
a fresh profile directory (no cookies, no localStorage from another run) and the flags a machine without outside
network needs (no background networking, no component updates, no sync). Network events are recorded from
Chromium's DevTools log, so a test can ask which requests failed. Screenshots go to the directory given.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--window-size=1400,900",
)
WAIT_SECONDS = 60


class BrowserError(AssertionError):
    """What the page showed instead of what was expected (its text, and the screenshot taken)."""


def available() -> str | None:
    """Why no browser can run here, or None."""
    for binary in (CHROMIUM, CHROMEDRIVER):
        if not binary.exists():
            return f"{binary} is missing: install Debian's `chromium` and `chromium-driver` (as .ci/run does)"
    return None


class Chromium:
    def __init__(self, screenshots: Path):
        self.screenshots = screenshots
        self._profile: Path | None = None
        self.driver: Any = None
        self._events: list[dict[str, Any]] = []

    def __enter__(self) -> Chromium:
        missing = available()
        if missing:
            raise BrowserError(missing)
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        self.screenshots.mkdir(parents=True, exist_ok=True)
        self._profile = Path(tempfile.mkdtemp(prefix="chromium-profile-"))
        options = webdriver.ChromeOptions()
        for flag in FLAGS:
            options.add_argument(flag)
        options.add_argument(f"--user-data-dir={self._profile}")
        options.binary_location = str(CHROMIUM)
        options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
        self.driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
        self.driver.set_page_load_timeout(WAIT_SECONDS)
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if self.driver is not None:
                self.driver.quit()
        finally:
            if self._profile is not None:
                shutil.rmtree(self._profile, ignore_errors=True)

    # -- navigation ----------------------------------------------------------------------------

    def login(self, gateway: str, email: str) -> None:
        """Log in at Kubeflow's front door as ``email`` (a fresh session: cookies and storage of the last user gone)."""
        self.driver.switch_to.default_content()
        self.driver.get(f"{gateway}/dex/login?email={quote(email)}&rd=/")
        self.driver.delete_all_cookies()
        self.driver.execute_script("window.localStorage.clear(); window.sessionStorage.clear();")
        self.driver.get(f"{gateway}/dex/login?email={quote(email)}&rd=/")

    def open(self, url: str) -> None:
        self.driver.switch_to.default_content()
        self.driver.get(url)

    def click_link(self, text: str) -> None:
        from selenium.webdriver.common.by import By

        self.driver.find_element(By.LINK_TEXT, text).click()

    def enter_iframe(self) -> str:
        """Switch into the dashboard's iframe once it has loaded something; returns its address then."""
        from selenium.webdriver.common.by import By

        deadline = time.monotonic() + WAIT_SECONDS
        while time.monotonic() < deadline:
            frames = self.driver.find_elements(By.TAG_NAME, "iframe")
            if frames and frames[0].get_attribute("src"):
                self.driver.switch_to.frame(frames[0])
                return self._settled_location()
            time.sleep(0.2)
        raise BrowserError(f"no iframe was loaded on {self.driver.current_url}")

    def _settled_location(self) -> str:
        """The frame's address once it stopped changing for a second (the landing page moves on to MLflow)."""
        last, since = None, time.monotonic()
        deadline = time.monotonic() + WAIT_SECONDS
        while time.monotonic() < deadline:
            current = self.driver.execute_script("return window.location.href")
            if current != last:
                last, since = current, time.monotonic()
            elif time.monotonic() - since >= 1.0 and self.driver.execute_script("return document.readyState") == "complete":
                return str(current)
            time.sleep(0.1)
        return str(last)

    def visit_in_frame(self, url: str) -> str:
        """Navigate the current frame (MLflow's UI routes by its hash), as a click on a link inside it would."""
        self.driver.execute_script("window.location.href = arguments[0]", url)
        return self._settled_location()

    def open_with_credentials(self, url: str, username: str, password: str) -> None:
        """Open ``url`` answering its HTTP login (Basic) with these credentials, as a person logging in would; Chromium
        keeps them for the origin, so the page's own requests are authenticated too."""
        scheme, rest = url.split("://", 1)
        self.open(f"{scheme}://{quote(username, safe='')}:{quote(password, safe='')}@{rest}")
        # Then the address without them, as the page is once the prompt is answered: a page whose own address carries
        # credentials cannot fetch() (Chromium refuses such requests), and the cached login answers for the origin.
        self.open(url)

    # -- what the page shows ---------------------------------------------------------------------

    def text(self) -> str:
        from selenium.webdriver.common.by import By

        return str(self.driver.find_element(By.TAG_NAME, "body").text)

    def wait_for_text(self, expected: str, timeout: float = WAIT_SECONDS) -> str:
        """The page's text once it contains ``expected``; fails with what it showed and a screenshot."""
        deadline = time.monotonic() + timeout
        text = ""
        while time.monotonic() < deadline:
            try:
                text = self.text()
            except Exception:  # noqa: BLE001 - the document is being replaced; ask again
                text = ""
            if expected in text:
                return text
            time.sleep(0.25)
        shot = self.screenshot("failure")
        raise BrowserError(
            f"{expected!r} never appeared on {self.driver.execute_script('return location.href')}; it showed "
            f"{text[:600]!r}; screenshot {shot}"
        )

    def settled_text(self, quiet: float = 2.0) -> str:
        """The page's text once it has not changed for ``quiet`` seconds (what a person would read)."""
        last, since = None, time.monotonic()
        deadline = time.monotonic() + WAIT_SECONDS
        while time.monotonic() < deadline:
            try:
                current = self.text()
            except Exception:  # noqa: BLE001 - being replaced
                current = None
            if current != last:
                last, since = current, time.monotonic()
            elif time.monotonic() - since >= quiet:
                return current or ""
            time.sleep(0.2)
        return last or ""

    def screenshot(self, name: str) -> Path:
        path = self.screenshots / f"{name}.png"
        self.driver.save_screenshot(str(path))
        return path

    # -- the network, from Chromium's DevTools log -----------------------------------------------

    def requests(self) -> list[dict[str, Any]]:
        """Every request seen so far: url, status (None if it never got an answer) and why it failed, if it did."""
        for entry in self.driver.get_log("performance"):
            self._events.append(json.loads(entry["message"])["message"])
        found: dict[str, dict[str, Any]] = {}
        for event in self._events:
            params = event.get("params", {})
            if event.get("method") == "Network.requestWillBeSent":
                found[params["requestId"]] = {"url": params["request"]["url"], "status": None, "failed": None}
            elif event.get("method") == "Network.responseReceived" and params.get("requestId") in found:
                found[params["requestId"]]["status"] = params["response"]["status"]
            elif event.get("method") == "Network.loadingFailed" and params.get("requestId") in found:
                found[params["requestId"]]["failed"] = params.get("errorText")
        return list(found.values())

    def failed_requests(self, path: str) -> list[str]:
        """Requests under ``path`` that never got an answer, or got a server error or a missing file."""
        bad = []
        for r in self.requests():
            if path not in r["url"]:
                continue
            status = r["status"]
            if r["failed"] and r["failed"] != "net::ERR_ABORTED":
                bad.append(f"{r['url']}: {r['failed']}")
            elif status is not None and (status >= 500 or (status == 404 and "/static-files/" in r["url"])):
                bad.append(f"{r['url']}: HTTP {status}")
        return bad
