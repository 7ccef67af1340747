"""The operator's live change of the pace, from the shell, and a month that keeps it: the
requests' arrivals are timed at the fake Gemini (a sqlite instance, as `make dev` has)."""

from __future__ import annotations

import itertools
import json
import sys
from collections.abc import Iterator

import pytest

from passport_pipeline_tests.support.dataset import UserRow, cover_urls, october
from passport_pipeline_tests.support.deployment import Deployment
from passport_pipeline_tests.support.fake_gemini import FakeGemini
from passport_pipeline_tests.support.gemini_deployment import (
    gemini_deployment,
    gemini_fake,
)

QUOTA = [sys.executable, "-m", "passport_pipeline.cli.quota"]

pytestmark = pytest.mark.e2e


@pytest.fixture
def gemini() -> Iterator[FakeGemini]:
    yield from gemini_fake()


@pytest.fixture
def deployment(tmp_path, sqlite_url, gemini) -> Deployment:
    users = [UserRow(i, visits=[(1, october(9))]) for i in range(1, 6)]
    return gemini_deployment(tmp_path, sqlite_url, users, gemini)


def quota(deployment: Deployment, *args: str):
    return deployment.run(*QUOTA, *args)


def test_a_limit_set_from_the_shell_spaces_the_next_months_requests(deployment, gemini):
    shown = quota(deployment, "--json")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["pace"]["limit"] is None

    changed = quota(deployment, "set", "30")
    assert changed.returncode == 0, changed.stderr
    assert "limit set: 30/min (limit 30)" in changed.stdout
    assert json.loads(quota(deployment, "--json").stdout)["pace"]["limit"] == 30

    month = deployment.execute_month("2026-10")
    assert month.returncode == 0, month.stdout[-3000:]
    assert all(cover_urls(deployment.env["PASSPORT_DATABASE_URL"]).values())
    arrivals = sorted(record.start for record in gemini.records if record.endpoint == "generate")
    gaps = [later - earlier for earlier, later in itertools.pairwise(arrivals)]
    # The pacer lets one request go every 2 s; unpaced, the 5 steps call at once. Arrivals at
    # the fake carry the client's scheduling jitter (a loaded machine: tens of ms), so the
    # spacing is checked at the fake with that margin, and the total span is the exact part.
    assert len(arrivals) == 5 and min(gaps) >= 60 / 30 * 0.75
    assert arrivals[-1] - arrivals[0] >= 4 * 60 / 30 * 0.95

    after = json.loads(quota(deployment, "--json").stdout)
    assert after["started_last_minute"] == 5 and after["in_flight"] == 0
    cleared = quota(deployment, "clear")
    assert cleared.returncode == 0 and "limit from the environment" in cleared.stdout
    assert json.loads(quota(deployment, "--json").stdout)["pace"]["limit"] is None


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["set", "0"], "must be a positive number"),
        (["set", "fast"], "'fast' is not a number of requests a minute"),
        (["set"], "set needs a number"),
    ],
)
def test_bad_input_is_refused_with_one_clear_line_and_changes_nothing(deployment, args, said):
    refused = quota(deployment, *args)
    assert refused.returncode == 2 and said in refused.stderr
    assert json.loads(quota(deployment, "--json").stdout)["pace"]["limit"] is None
