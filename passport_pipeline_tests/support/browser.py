"""Headless Chromium (Debian's ``chromium`` and ``chromium-driver``) driven through Selenium.

No browser is downloaded: the driver and the browser are the system's, named by path, so
Selenium never looks for (or fetches) one of its own."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
INSTALL = "apt-get update && apt-get install -y chromium chromium-driver"
FLAGS = (
    "--headless",
    "--no-sandbox",  # tests run as root
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    # Nothing but the page under test goes on the network.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1400,1000",
)
REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / "ui-screenshots"  # git-ignored: what an operator saw, after each run


def missing_browser() -> str | None:
    """Why the browser cannot start, with the one command that fixes it; None if it can."""
    missing = [str(path) for path in (CHROMIUM, CHROMEDRIVER) if not path.exists()]
    if missing:
        return f"{' and '.join(missing)} not found: install them with `{INSTALL}` (as root)"
    return None


@contextmanager
def chromium(profile: Path, log: Path) -> Iterator[WebDriver]:
    """A fresh headless Chromium with its own profile folder; quit on the way out."""
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    driver = webdriver.Chrome(
        service=Service(str(CHROMEDRIVER), log_output=str(log)), options=options
    )
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def wait_for(
    driver: WebDriver, condition: Callable[[WebDriver], object], timeout: float, waiting_for: str
):
    """``condition``'s first truthy answer; a page that re-renders under it is asked again."""
    wait = WebDriverWait(
        driver, timeout, poll_frequency=0.25, ignored_exceptions=[StaleElementReferenceException]
    )
    return wait.until(condition, f"{waiting_for} (at {driver.current_url}, after {timeout} s)")


def screenshot(driver: WebDriver, name: str) -> Path:
    SCREENSHOTS.mkdir(exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    driver.save_screenshot(str(path))
    return path
