"""The deployment's metrics for Prometheus, from the Dagster instance's durable records.

    python -m passport_pipeline.cli.metrics [--port 9464] [--address 0.0.0.0]

Serves ``/metrics`` (the Prometheus text format) on any machine that can read the instance
(``DAGSTER_HOME``). Each scrape reads only the records added since the last one; a restarted
exporter reads them all once, so its counters start where the records are (README, Monitoring).
"""

from __future__ import annotations

import argparse
import logging
import sys
import threading

from dagster import DagsterInstance
from prometheus_client import CollectorRegistry, start_http_server

from passport_pipeline.covers.names import GEMINI_POOL
from passport_pipeline.metrics.exposition import PassportCollector
from passport_pipeline.metrics.reader import InstanceReader
from passport_pipeline.settings import SettingsError, load_settings

DEFAULT_PORT = 9464


def open_reader() -> InstanceReader:
    """The instance, read once in full (what every counter starts from)."""
    instance = DagsterInstance.get()
    reader = InstanceReader(instance, pools=(GEMINI_POOL,))
    reader.snapshot()
    return reader


def _one_line(error: BaseException) -> str:
    """The error and, if it wraps one (a database's), its first cause's first line."""
    said = " ".join(str(error).split())[:400] or type(error).__name__
    cause = error.__cause__ or error.__context__
    while cause is not None and (cause.__cause__ or cause.__context__) is not None:
        cause = cause.__cause__ or cause.__context__
    if cause is not None and str(cause).strip():
        said += f" ({str(cause).strip().splitlines()[0][:300]})"
    return said


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="default 9464")
    parser.add_argument("--address", default="0.0.0.0", help="the address to listen on")
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
    except SettingsError as error:
        print(f"metrics: {error}", file=sys.stderr)
        return 2
    # dagster-postgres logs each retry of its connection at WARNING: the one line below says it.
    logging.basicConfig(level=logging.ERROR)
    try:
        reader = open_reader()
    except Exception as error:  # any reason the instance cannot be read: one line, then stop
        print(f"metrics: cannot read the Dagster instance: {_one_line(error)}", file=sys.stderr)
        return 2
    registry = CollectorRegistry(auto_describe=False)
    registry.register(PassportCollector(reader.snapshot, settings.month_budget_usd))
    try:
        server, _ = start_http_server(args.port, args.address, registry)
    except OSError as error:
        print(f"metrics: cannot listen on {args.address}:{args.port}: {error}", file=sys.stderr)
        return 2
    print(f"metrics: serving http://{args.address}:{args.port}/metrics", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        server.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
