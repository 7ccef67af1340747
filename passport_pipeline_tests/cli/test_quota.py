"""The operator's live change of the pace, from the shell, and a month that keeps it: the
requests' arrivals are timed at the fake Gemini (a sqlite instance, as `make dev` has). The
command's other answers are read by calling its ``main`` in this process, on the deployment's
environment (a command start costs seconds of CPU)."""

from __future__ import annotations

import itertools
import json
import sys
from collections.abc import Iterator

import pytest

from passport_pipeline.cli.quota import main as quota_main
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
    """The command, from the shell."""
    return deployment.run(*QUOTA, *args)


def quota_here(deployment: Deployment, capsys, *args: str) -> tuple[int, str, str]:
    """The command's exit code, output and errors, its ``main`` called in this process."""
    capsys.readouterr()
    with deployment.environment():
        code = quota_main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def shown(deployment: Deployment, capsys) -> dict:
    code, out, err = quota_here(deployment, capsys, "--json")
    assert code == 0, err
    return json.loads(out)


def test_a_limit_set_from_the_shell_spaces_the_next_months_requests(deployment, gemini, capsys):
    assert shown(deployment, capsys)["pace"]["limit"] is None

    changed = quota(deployment, "set", "30")
    assert changed.returncode == 0, changed.stderr
    assert "limit set: 30/min (limit 30)" in changed.stdout
    read = quota(deployment, "--json")
    assert read.returncode == 0, read.stderr
    assert json.loads(read.stdout)["pace"]["limit"] == 30

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

    after = shown(deployment, capsys)
    assert after["started_last_minute"] == 5 and after["in_flight"] == 0
    code, out, _ = quota_here(deployment, capsys, "clear")
    assert code == 0 and "limit from the environment" in out
    assert shown(deployment, capsys)["pace"]["limit"] is None


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["set", "0"], "must be a positive number"),
        (["set", "fast"], "'fast' is not a number of requests a minute"),
        (["set"], "set needs a number"),
    ],
)
def test_bad_input_is_refused_with_one_clear_line_and_changes_nothing(
    deployment, capsys, args, said
):
    code, _, err = quota_here(deployment, capsys, *args)
    assert code == 2 and said in err
    assert len(err.strip().splitlines()) == 1
    assert shown(deployment, capsys)["pace"]["limit"] is None
