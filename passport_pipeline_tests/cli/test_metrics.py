"""The exporter refuses to start on an instance it cannot read, or a bad setting: one line that
names the problem, and a non-zero exit."""

from __future__ import annotations

import pytest

from passport_pipeline.cli.metrics import main


def _broken_yaml(tmp_path) -> str:
    (tmp_path / "dagster.yaml").write_text("run_storage: [\n")
    return str(tmp_path)


@pytest.mark.parametrize(
    ("home", "said"),
    [
        (lambda tmp_path: str(tmp_path / "missing"), "is not a directory or does not exist"),
        (_broken_yaml, 'dagster.yaml", line 2'),
        (lambda tmp_path: None, "DAGSTER_HOME is not set"),
    ],
    ids=["missing-home", "broken-dagster-yaml", "no-home"],
)
def test_an_unreadable_instance_is_one_clear_line(tmp_path, monkeypatch, capsys, home, said):
    value = home(tmp_path)
    if value is None:
        monkeypatch.delenv("DAGSTER_HOME", raising=False)
    else:
        monkeypatch.setenv("DAGSTER_HOME", value)
    assert main(["--port", "0"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("metrics: cannot read the Dagster instance: ")
    assert said in err


def test_a_bad_budget_is_named(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    monkeypatch.setenv("PASSPORT_MONTH_BUDGET_USD", "lots")
    assert main(["--port", "0"]) == 2
    assert capsys.readouterr().err == "metrics: PASSPORT_MONTH_BUDGET_USD='lots' is not a number\n"
