"""Paid price per cover of the same month, through the direct path and through Gemini's Batch API.

    .venv/bin/python -m bench.batch_price --users 50

Runs one month twice, in process, on two fresh copies of the same app data (sqlite) and local
stores, against the local fake Gemini over HTTP: once with ``GeminiImageModel`` (one
``generateContent`` per user), once with ``GeminiBatchImageModel`` (the month's run submits a
batch, the fake finishes it, the sensor's tick requests the results run, which stores the
covers). The price comes from the fake's own record of which endpoint served each image, at
Google's list prices (``PRICES``); the pipeline's own estimate (the month's summary) is printed
beside it, and the two must agree.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from dagster import DagsterInstance, Definitions, build_sensor_context

from passport_pipeline.covers.asset import build_covers_asset, covers_job
from passport_pipeline.covers.batch_sensor import batch_sensors
from passport_pipeline.covers.policies import cover_retry_policy
from passport_pipeline.resources.gemini import GeminiImageModel
from passport_pipeline.resources.gemini_batch import GeminiBatchImageModel
from passport_pipeline_tests.support.dataset import UserRow, cover_urls, october, write_dataset
from passport_pipeline_tests.support.fake_gemini import FakeGemini
from passport_pipeline_tests.support.launch import local_resources_for, materialize_month

MONTH = "2026-10"
# USD per image of gemini-2.5-flash-image: the direct price, and the Batch API's half of it.
PRICES = {"generate": 0.039, "batch": 0.0195}
covers = build_covers_asset(cover_retry_policy(delay_s=0.05))


def users(count: int) -> list[UserRow]:
    return [UserRow(u, visits=[(1 + u % 5, october(1 + u % 28))]) for u in range(1, count + 1)]


def month_cost(result) -> float:
    [summary] = result.asset_materializations_for_node("passport_covers")
    return float(summary.metadata["estimated_cost_usd"].value)


def run_path(path: str, count: int, root: Path, server: FakeGemini) -> dict:
    db_url = f"sqlite:///{root / path / 'app.sqlite3'}"
    (root / path / "dagster").mkdir(parents=True)
    (root / path / "dagster" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    write_dataset(db_url, users(count))
    common = {"api_key": "test-key", "base_url": server.base_url, "initial_backoff_s": 0.01}
    model = GeminiBatchImageModel(**common) if path == "batch" else GeminiImageModel(**common)
    resources = {**local_resources_for(db_url, root / path / "store"), "image_model": model}
    before = server.batches.paid_images()
    with DagsterInstance.local_temp(str(root / path / "dagster")) as instance:
        result = materialize_month(covers, resources, instance, MONTH)
        if path == "batch":
            [name] = server.batches.names()[-1:]
            server.batches.finish(name)
            poll, _ = batch_sensors(covers_job, poll_interval_s=60)
            definitions = Definitions(assets=[covers], jobs=[covers_job], resources=resources)
            with build_sensor_context(
                instance=instance, resources=resources, definitions=definitions
            ) as context:
                [request] = poll.evaluate_tick(context).run_requests
            result = materialize_month(
                covers, resources, instance, MONTH, request.run_config, request.tags
            )
        assert result.success, f"the {path} month failed"
        estimated = month_cost(result)
    images = server.batches.paid_images() - before
    covered = sum(1 for url in cover_urls(db_url).values() if url)
    paid = sum(PRICES[endpoint] * n for endpoint, n in images.items())
    return {"path": path, "covers": covered, "images": dict(images), "paid": paid, "est": estimated}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, FakeGemini() as server:
        rows = [run_path(path, args.users, Path(tmp), server) for path in ("direct", "batch")]
    print(f"month {MONTH}, {args.users} users, prices per image: {PRICES}")
    print(f"{'path':<8}{'covers':>8}  {'images served':<18}{'paid USD':>10}{'per cover':>11}"
          f"{'pipeline estimate':>19}")  # fmt: skip
    for row in rows:
        served = ", ".join(f"{k}: {v}" for k, v in row["images"].items())
        per_cover = row["paid"] / row["covers"]
        print(
            f"{row['path']:<8}{row['covers']:>8}  {served:<18}{row['paid']:>10.4f}"
            f"{per_cover:>11.4f}{row['est']:>19.4f}"
        )
    direct, batch = rows
    ratio = (batch["paid"] / batch["covers"]) / (direct["paid"] / direct["covers"])
    print(f"batch / direct paid per cover: {ratio:.2f}")


if __name__ == "__main__":
    main()
