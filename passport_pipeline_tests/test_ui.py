"""The operator's path in a real browser: the seeded demo served by ``dagster-webserver`` and
``dagster-daemon``, headless Chromium launching a month from the Launchpad, stopping it with
Terminate, finishing it with Re-execute ▸ From failure, reading the month's covers on the
asset's partition page, and a backfill from the Materialize… dialog. One test walks every flow
on one webserver and daemon (each start costs the 2-core machine tens of CPU seconds).
Screenshots go to ``ui-screenshots/``."""

from __future__ import annotations

import sys
from contextlib import ExitStack

import pytest
import requests
from dagster import AssetKey, AssetRecordsFilter, DagsterEventType
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver

from passport_pipeline.domain.summary import PREVIEW_COUNT
from passport_pipeline_tests.support.browser import chromium, missing_browser, screenshot, wait_for
from passport_pipeline_tests.support.dataset import cover_urls
from passport_pipeline_tests.support.deployment import Deployment
from passport_pipeline_tests.support.fake_gemini import FakeGemini

MONTH = "2026-10"
DEMO_USERS = 23  # the demo's users with a visit in October 2026 (demo/seed.py)
PAGE_TIMEOUT_S = 60  # bounds on waits for a condition, not speed checks: the machine may be busy
RUN_TIMEOUT_S = 240
RUN_STATUSES = ("Success", "Failure", "Canceled")
API_KEY = "AIzaTEST-ui-key-0001112223334445556"

pytestmark = pytest.mark.e2e


@pytest.fixture
def demo(tmp_path):
    """(deployment, base URL, Gemini server) of the seeded demo, with the webserver and the
    daemon up."""
    with ExitStack() as stack:
        yield from _demo(tmp_path, stack)


def _demo(tmp_path, stack: ExitStack):
    reason = missing_browser()
    if reason:
        pytest.fail(reason)
    root = tmp_path / "ui"
    # The Gemini model (a local server speaking its protocol): its resource config is what the
    # Launchpad must scaffold validly.
    gemini = stack.enter_context(FakeGemini(api_keys=[API_KEY]))
    deployment = Deployment.create(
        root, PASSPORT_IMAGE_MODEL="gemini", GEMINI_BASE_URL=gemini.base_url, GEMINI_API_KEY=API_KEY
    )
    seeded = deployment.run(sys.executable, "-m", "passport_pipeline.demo.seed")
    assert seeded.returncode == 0, seeded.stdout + seeded.stderr
    with deployment.webserver() as port:
        base = f"http://127.0.0.1:{port}"
        # The UI's first-visit "Join the Dagster community" dialog covers the page until an
        # operator skips it; its Skip button sends this mutation.
        seen = requests.post(
            f"{base}/graphql", json={"query": "mutation { setNuxSeen }"}, timeout=30
        )
        assert seen.json() == {"data": {"setNuxSeen": True}}
        yield deployment, base, gemini


@pytest.fixture
def browser(demo, tmp_path):
    root = tmp_path / "chromium"
    root.mkdir()
    with chromium(root / "profile", root / "chromedriver.log") as driver:
        try:
            yield driver
        finally:
            screenshot(driver, "last-page")  # where a failed wait stopped


def element(driver: WebDriver, xpath: str, timeout: float = PAGE_TIMEOUT_S):
    def shown(d):
        found = [e for e in d.find_elements(By.XPATH, xpath) if e.is_displayed()]
        return found[0] if found else False

    return wait_for(driver, shown, timeout, f"an element {xpath}")


def launch_month_from_the_launchpad(driver: WebDriver, base: str, month: str) -> str:
    """The operator's clicks, as the README names them: Catalog → passport_covers →
    Materialize… ▸ Open launchpad, pick the partition, Materialize. Returns the run page's URL."""
    driver.get(f"{base}/assets/passport_covers")
    materialize = element(driver, "//button[normalize-space()='Materialize…']")
    materialize.find_element(By.XPATH, "following::button[1]").click()  # its ▾ menu
    element(driver, "//*[normalize-space()='Open launchpad' and not(*)]").click()
    element(driver, "//input[@placeholder='Partition']")

    def partition_chosen(d):
        # The Launchpad re-renders as it loads the job (a value typed too early is dropped):
        # each poll does the next step of the operator's typing, from what the page shows now.
        if d.find_elements(By.XPATH, f"//span[@data-tooltip='partition: {month}']"):
            return True
        field = d.find_element(By.XPATH, "//input[@placeholder='Partition']")
        offered = d.find_elements(By.XPATH, f"//li[normalize-space()='{month}']")
        if any(option.is_displayed() for option in offered):
            field.send_keys(Keys.ENTER)
        elif field.get_attribute("value") != month:
            field.click()
            field.clear()
            field.send_keys(month)
        return False

    wait_for(driver, partition_chosen, PAGE_TIMEOUT_S, f"the partition {month} chosen")
    # The button stays grey until the Launchpad has checked the scaffolded config: with the
    # Gemini model, a plain `aspect_ratio: 3:4` once kept it grey for good (YAML's 184).
    launch = element(driver, "//button[normalize-space()='Materialize' and not(@disabled)]")
    screenshot(driver, "1-launchpad")
    launch.click()
    wait_for(driver, lambda d: "/runs/" in d.current_url, PAGE_TIMEOUT_S, "the run's page")
    return driver.current_url


def test_an_operator_stops_finishes_inspects_and_backfills_a_month_in_the_ui(demo, browser):
    """One operator's afternoon, on one webserver and daemon: a month launched from the
    Launchpad and stopped half-way with Terminate, finished with Re-execute ▸ From failure
    (each user paid once), read on the asset's partition page with its covers as images, and
    run again with another month from the backfill dialog (nothing paid twice)."""
    deployment, base, gemini = demo
    deployment.set_pool_limit(2)
    gemini.latency_s = 1.0  # two covers a second: the month is under way when it is stopped
    launch_month_from_the_launchpad(browser, base, MONTH)
    wait_for(browser, lambda _: gemini.generate_requests >= 3, RUN_TIMEOUT_S, "paid calls")

    # The run page's Terminate, then its dialog's confirmation.
    element(browser, "//button[normalize-space()='Terminate']").click()
    element(browser, "//*[@role='dialog']//button[normalize-space()='Terminate 1 run']").click()
    element(browser, "//*[normalize-space()='Canceled']", RUN_TIMEOUT_S)
    screenshot(browser, "2-terminated")
    [stopped] = deployment.runs()
    assert stopped.status.value == "CANCELED"
    assert stopped.tags["dagster/partition"] == MONTH
    assert 0 < covered_users(deployment) < DEMO_USERS
    # A Terminate is an outcome: the run's end names its failed steps, with no stack trace.
    with deployment.instance() as instance:
        [canceled] = instance.all_logs(stopped.run_id, of_type=DagsterEventType.RUN_CANCELED)
    assert canceled.dagster_event.event_specific_data.error is None
    assert "Run was canceled. Failed steps:" in canceled.dagster_event.message

    # Re-execute ▾ → From failure: the users without a cover, and then the month, at the
    # pool's default width again.
    deployment.set_pool_limit(50)
    gemini.latency_s = 0
    element(
        browser, "//button[starts-with(normalize-space(), 'Re-execute')]/following::button[1]"
    ).click()  # its ▾ menu
    element(browser, "//*[normalize-space()='From failure' and not(*)]").click()
    wait_for(
        browser,
        lambda d: "/runs/" in d.current_url and stopped.run_id not in d.current_url,
        PAGE_TIMEOUT_S,
        "the re-execution's page",
    )
    again = browser.current_url.rsplit("/runs/", 1)[1].split("?")[0]

    def finished(_):
        # The page also lists the root run (Canceled) among the re-executions: read the run.
        with deployment.instance() as instance:
            run = instance.get_run_by_id(again)
            return run is not None and run.is_finished and run.status.value

    assert wait_for(browser, finished, RUN_TIMEOUT_S, "the re-execution to end") == "SUCCESS"
    element(browser, "//*[normalize-space()='Success']")
    # The run page's header shows no custom tag: the month's progress is a line of its log,
    # which the log's filter box finds among the month's events, as an operator would. It
    # counts the whole month, the users covered before the stop included.
    element(browser, "//input[starts-with(@placeholder, 'Filter')]").send_keys("progress")
    element(browser, f"//*[starts-with(normalize-space(), 'progress: {DEMO_USERS} of')]")
    screenshot(browser, "3-reexecuted")
    assert covered_users(deployment) == DEMO_USERS
    # Calls in flight at the stop finished and were stored: each user was paid once, with the
    # Gemini config the Launchpad scaffolded.
    assert gemini.generate_requests == DEMO_USERS

    # The month on the asset's partition page: its true counts over both runs, and a preview.
    browser.get(f"{base}/assets/passport_covers?view=partitions&partition={MONTH}")
    show = element(
        browser,
        "//tr[td//span[normalize-space()='preview']]//a[normalize-space()='[Show Markdown]']",
    )
    element(browser, f"//tr[td//span[normalize-space()='month_covered']]//*[text()='{DEMO_USERS}']")
    screenshot(browser, "4-partition")
    show.click()

    def loaded_covers(driver):
        images = driver.find_elements(By.XPATH, "//img[starts-with(@alt, 'cover of user ')]")
        if len(images) < PREVIEW_COUNT:
            return False
        sizes = [
            driver.execute_script("return arguments[0].complete && arguments[0].naturalWidth", i)
            for i in images
        ]
        return all(sizes) and [
            (i.get_attribute("alt"), size) for i, size in zip(images, sizes, strict=True)
        ]

    covers = wait_for(browser, loaded_covers, PAGE_TIMEOUT_S, "the preview's covers loaded")
    screenshot(browser, "5-preview")
    assert len(covers) == PREVIEW_COUNT
    assert all(width > 0 for _, width in covers), covers
    assert element(browser, f"//*[contains(text(), 'covers of {MONTH}')]")
    # Why local covers are previewed as data: thumbnails: on the UI's http:// page the
    # browser refuses a file:// image, such as the cover the passport points at.
    cover = sorted((deployment.root / "home" / "images").rglob("*.png"))[0]
    assert file_image_outcome(browser, cover.as_uri()) == ["refused", 0]

    # The backfill dialog: Materialize… → Custom → two months → Launch backfill. October is
    # run again and reuses every stored cover: nothing more is paid for it.
    browser.get(f"{base}/assets/passport_covers")
    element(browser, "//button[normalize-space()='Materialize…']").click()
    element(browser, "//button[normalize-space()='Custom']").click()
    months = element(browser, "//input[starts-with(@placeholder, 'ex: ')]")
    months.send_keys(Keys.CONTROL, "a")  # Custom opens with every month: [2024-01...]
    months.send_keys(Keys.BACKSPACE, f"2026-09, {MONTH}", Keys.TAB)
    element(browser, "//*[normalize-space()='2 partitions']")
    launch = element(browser, "//button[normalize-space()='Launch backfill' and not(@disabled)]")
    screenshot(browser, "6-backfill-dialog")
    launch.click()

    def backfilled(_):
        runs = [run for run in deployment.runs() if run.tags.get("dagster/backfill")]
        return len(runs) == 2 and all(run.is_finished for run in runs) and runs

    runs = wait_for(browser, backfilled, RUN_TIMEOUT_S, "the backfill's runs to end")
    assert {(r.tags["dagster/partition"], r.status.value) for r in runs} == {
        ("2026-09", "SUCCESS"),
        (MONTH, "SUCCESS"),
    }
    with deployment.instance() as instance:
        [october] = instance.fetch_materializations(
            AssetRecordsFilter(asset_key=AssetKey("passport_covers"), asset_partitions=[MONTH]),
            limit=1,
        ).records
    summary = october.asset_materialization.metadata
    assert (summary["generated"].value, summary["reused"].value) == (0, DEMO_USERS)


def file_image_outcome(driver: WebDriver, url: str) -> list:
    return driver.execute_async_script(
        """
        const done = arguments[arguments.length - 1];
        const image = new Image();
        image.onload = () => done(['loaded', image.naturalWidth]);
        image.onerror = () => done(['refused', image.naturalWidth]);
        image.src = arguments[0];
        """,
        url,
    )


def covered_users(deployment: Deployment) -> int:
    """Passports of the demo's app database that point at a cover."""
    urls = cover_urls(f"sqlite:///{deployment.root / 'home' / 'app.sqlite3'}")
    return sum(1 for url in urls.values() if url)
