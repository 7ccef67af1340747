"""Debian's Prometheus for the monitoring tests: a server of its own on a free port of
127.0.0.1 scraping one target every second, asked through its HTTP API; and the exporter
(``python -m passport_pipeline.cli.metrics``) as an operator starts it."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests

from passport_pipeline_tests.support.deployment import REPO, free_port
from passport_pipeline_tests.support.waiting import wait_for

PROMETHEUS = Path("/usr/bin/prometheus")
INSTALL = "make prometheus (apt-get install -y prometheus, as root)"


def _get(url: str) -> requests.Response | None:
    try:
        return requests.get(url, timeout=5)
    except requests.RequestException:
        return None


@dataclass(frozen=True)
class Exporter:
    url: str  # its /metrics
    pid: int


@contextmanager
def exporter(env: dict[str, str], log: Path, port: int | None = None) -> Iterator[Exporter]:
    """The exporter on ``port`` (else a free one), once it answers."""
    port = port or free_port()
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "passport_pipeline.cli.metrics", "--port", str(port)],
            cwd=REPO,
            env={**env, "PYTHONUNBUFFERED": "1"},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        wait_for(
            lambda: process.poll() is not None or ((r := _get(url)) is not None and r.ok),
            "the exporter answering",
            60,
        )
        assert process.poll() is None, log.read_text()
        yield Exporter(url, process.pid)
    finally:
        _stop(process, "the exporter")


def _stop(process: subprocess.Popen, what: str) -> None:
    """SIGTERM, as an operator's service manager stops it; if that does not end it within 30 s
    (the exporter, seen twice in full suites, never alone), say what the process was doing."""
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        state = _proc_status(process.pid)
        process.kill()
        process.wait(timeout=30)
        raise AssertionError(f"{what} did not end within 30 s of SIGTERM: {state}") from None


def _proc_status(pid: int) -> str:
    """The kernel's view of a process: its state and its blocked, ignored and caught signals."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
        wchan = Path(f"/proc/{pid}/wchan").read_text()
    except OSError as error:
        return f"(unreadable: {error})"
    wanted = ("State", "SigPnd", "ShdPnd", "SigBlk", "SigIgn", "SigCgt", "Threads")
    return "; ".join(line for line in lines if line.startswith(wanted)) + f"; wchan {wchan}"


@contextmanager
def prometheus(root: Path, target: str) -> Iterator[Prometheus]:
    """Prometheus scraping ``target`` (host:port) every second, once it is ready; stopped on
    the way out. Start it before the target: it hands new targets to its scrapers only every
    few seconds (its discovery reload), so the two start-ups overlap."""
    if not PROMETHEUS.exists():
        raise RuntimeError(f"{PROMETHEUS} not found: install it with `{INSTALL}`")
    root.mkdir(parents=True, exist_ok=True)
    config = root / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        "scrape_configs:\n"
        f"  - job_name: passport\n    static_configs: [{{targets: ['{target}']}}]\n"
    )
    port = free_port()
    with (root / "prometheus.log").open("w") as log:
        process = subprocess.Popen(
            [
                str(PROMETHEUS),
                f"--config.file={config}",
                f"--storage.tsdb.path={root / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    server = Prometheus(f"http://127.0.0.1:{port}")
    try:
        wait_for(lambda: process.poll() is not None or server.ready(), "Prometheus being ready", 60)
        assert process.poll() is None, (root / "prometheus.log").read_text()[-3000:]
        yield server
    finally:
        _stop(process, "Prometheus")


class Prometheus:
    def __init__(self, url: str):
        self.url = url

    def ready(self) -> bool:
        answer = _get(f"{self.url}/-/ready")
        return answer is not None and answer.ok

    def wait_scraped(self) -> None:
        """Until the target has been scraped: what a test then does is seen."""
        wait_for(lambda: self.query("up") == 1, "Prometheus scraping its target", 60)

    def query(self, expr: str) -> float | None:
        """The value of a query that gives one sample; None while it gives none."""
        answer = requests.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=10)
        answer.raise_for_status()
        result = answer.json()["data"]["result"]
        assert len(result) <= 1, result
        return float(result[0]["value"][1]) if result else None
