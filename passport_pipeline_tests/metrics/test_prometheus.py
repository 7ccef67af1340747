"""A real Prometheus (Debian's) scrapes the exporter while a month runs against the Gemini fake;
what Prometheus then holds for the month is what the fake itself counted."""

from __future__ import annotations

import threading

import pytest

from passport_pipeline.covers.asset import build_covers_asset
from passport_pipeline.covers.policies import cover_retry_policy
from passport_pipeline.resources.gemini import GeminiImageModel
from passport_pipeline_tests.support.dataset import UserRow, october, write_dataset
from passport_pipeline_tests.support.deployment import Deployment, free_port
from passport_pipeline_tests.support.fake_gemini import FakeGemini
from passport_pipeline_tests.support.gemini_deployment import GEMINI_TEST_KEY, gemini_fake
from passport_pipeline_tests.support.launch import local_resources_for, materialize_month
from passport_pipeline_tests.support.prometheus import exporter, prometheus
from passport_pipeline_tests.support.waiting import wait_for

PRICE = 0.039
USERS = [UserRow(i, title=f"Trip {i:03d}", visits=[(1 + i % 5, october(9))]) for i in range(1, 4)]
covers = build_covers_asset(cover_retry_policy(delay_s=0.05))


@pytest.fixture
def gemini() -> FakeGemini:
    yield from gemini_fake()


def test_prometheus_holds_the_months_covered_users_and_paid_images_the_fake_counted(
    tmp_path, sqlite_url, gemini
):
    write_dataset(sqlite_url, USERS)
    model = GeminiImageModel(
        api_key=GEMINI_TEST_KEY, base_url=gemini.base_url, price_per_image_usd=PRICE, pacing=False
    )
    resources = {**local_resources_for(sqlite_url, tmp_path / "store"), "image_model": model}
    deployment = Deployment.create(tmp_path / "deployment")
    with deployment.instance():  # the storage exists before the exporter reads it
        pass
    # Each call takes a second: Prometheus, scraping every second, sees users in flight.
    gemini.latency_s = 1.0
    month = 'month="2026-10"'
    port = free_port()
    with (
        prometheus(tmp_path / "prometheus", f"127.0.0.1:{port}") as server,
        exporter(deployment.env, tmp_path / "exporter.log", port),
        deployment.instance() as instance,
    ):
        server.wait_scraped()
        results = []
        run = threading.Thread(
            target=lambda: results.append(materialize_month(covers, resources, instance, "2026-10"))
        )
        run.start()
        try:
            wait_for(
                lambda: server.query("passport_gemini_in_flight > 0"),
                "Prometheus scraping a user in flight",
                60,
            )
        finally:
            run.join(timeout=120)
        assert results and results[0].success

        covered = f'passport_month_users{{{month},state="covered"}}'
        wait_for(lambda: server.query(covered) == len(USERS), "Prometheus scraping the end", 30)
        images = gemini.stats()["outcomes"]["image"]
        assert images == len(USERS)
        assert server.query(f"sum(passport_images_paid_total{{{month}}})") == images
        assert server.query(f'passport_month_users{{{month},state="remaining"}}') == 0
        assert server.query(f"passport_cost_usd_total{{{month}}}") == pytest.approx(images * PRICE)
        assert server.query('passport_gemini_responses_total{class="ok"}') == images
