"""The alert rules (checked and unit-tested by Debian's promtool), the Grafana dashboard (every
query names only what the exporter serves) and the README (every metric documented)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections import Counter
from pathlib import Path

import pytest
import yaml
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from passport_pipeline.covers.batch_ledger import BatchRecord
from passport_pipeline.metrics.exposition import METRICS, PassportCollector
from passport_pipeline.metrics.facts import Histogram
from passport_pipeline.metrics.reader import Snapshot

REPO = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = REPO / "deploy" / "prometheus"
DASHBOARD = REPO / "deploy" / "grafana" / "passport-covers.json"
INSTALL = "apt-get install -y prometheus"
_NAME = re.compile(r"\b(passport_[a-z0-9_]+)\b")


def served_sample_names() -> set[str]:
    """Every sample name of one scrape where each metric has a value."""
    snapshot = Snapshot(
        months={"2026-10": {"planned": 3, "covered": 2, "remaining": 1}},
        paid={"2026-10": Counter(direct=2)},
        cost={"2026-10": 0.078},
        in_flight=1,
        responses=Counter(ok=2),
        latency=Histogram(),
        last_success={"2026-09": 1.0},
        batches=[BatchRecord("batches/abc", "2026-10", "JOB_STATE_RUNNING")],
        alerts_pending=0,
        pool={"gemini": (50, 1)},
    )
    snapshot.latency.observe(12.0)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(PassportCollector(lambda: snapshot, budget_usd=100.0))
    text = generate_latest(registry).decode()
    return {s.name for f in text_string_to_metric_families(text) for s in f.samples}


def promtool(*args: str) -> subprocess.CompletedProcess:
    if shutil.which("promtool") is None:
        pytest.fail(f"promtool not found: install Debian's prometheus with `{INSTALL}` (as root)")
    return subprocess.run(
        ["promtool", *args], cwd=PROMETHEUS_DIR, capture_output=True, text=True, timeout=60
    )


def test_the_alert_rules_are_valid():
    checked = promtool("check", "rules", "alerts.yml")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 4 rules found" in checked.stdout


def test_each_alert_fires_on_its_series_and_not_before():
    tested = promtool("test", "rules", "alerts_test.yml")
    assert tested.returncode == 0, tested.stdout + tested.stderr
    alerts = set(re.findall(r"- alert: (\w+)", (PROMETHEUS_DIR / "alerts.yml").read_text()))
    tests = (PROMETHEUS_DIR / "alerts_test.yml").read_text()
    assert {name for name in alerts if f"alertname: {name}" in tests} == alerts


def test_the_rules_name_only_served_metrics():
    served = served_sample_names()
    rules = yaml.safe_load((PROMETHEUS_DIR / "alerts.yml").read_text())["groups"][0]["rules"]
    for rule in rules:
        named = set(_NAME.findall(rule["expr"]))
        assert named and named <= served, (rule["alert"], named - served)


def test_every_dashboard_panel_queries_only_served_metrics():
    served = served_sample_names()
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["panels"]
    for panel in dashboard["panels"]:
        expressions = [target["expr"] for target in panel["targets"]]
        assert expressions, panel["title"]
        for expr in expressions:
            named = set(_NAME.findall(expr))
            assert named, (panel["title"], expr)
            assert named <= served, (panel["title"], named - served)
    for variable in dashboard["templating"]["list"]:
        assert set(_NAME.findall(json.dumps(variable))) <= served


def test_the_readme_documents_every_metric():
    readme = (REPO / "README.md").read_text()
    served = served_sample_names()
    for family in METRICS:
        name = family + "_total" if family + "_total" in served else family
        assert f"`{name}" in readme, name
