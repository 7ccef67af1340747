"""The old design's equivalent: the same prompts through a bare ThreadPoolExecutor(K).

    python bench/baseline.py --base-url URL --users N --months M --pool K OUT.json

Calls the production client (``GeminiImageModel(...).generate``) from K threads of one
process. The API key comes from ``GEMINI_API_KEY``. Measures makespan (first submit → last
answer), this process's CPU (user+system) during the calls, and its peak RSS and PSS.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psutil

from bench import workload
from passport_pipeline.resources.gemini import GeminiImageModel


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--users", type=int, required=True)
    parser.add_argument("--months", type=int, default=1)
    parser.add_argument("--pool", type=int, default=50)
    parser.add_argument("out")
    args = parser.parse_args()

    requests = list(workload.requests(args.users, args.months))
    model = GeminiImageModel(api_key=os.environ["GEMINI_API_KEY"], base_url=args.base_url)
    me = psutil.Process()
    peak = {"pss": 0, "rss": 0}
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.5):
            info = me.memory_full_info()
            peak["pss"], peak["rss"] = max(peak["pss"], info.pss), max(peak["rss"], info.rss)

    sampler = threading.Thread(target=sample, daemon=True)
    errors: list[str] = []

    def call(request) -> None:
        try:
            model.generate(request)
        except Exception as error:  # counted, not raised: the figure is the makespan
            errors.append(f"{type(error).__name__}: {error}")

    cpu_before = me.cpu_times()
    sampler.start()
    started = time.time()
    with ThreadPoolExecutor(max_workers=args.pool) as pool:
        list(pool.map(call, requests))
    finished = time.time()
    cpu_after = me.cpu_times()
    stop.set()
    sampler.join(timeout=5)
    info = me.memory_full_info()
    cpu = (cpu_after.user - cpu_before.user) + (cpu_after.system - cpu_before.system)
    result = {
        "calls": len(requests),
        "errors": len(errors),
        "first_errors": errors[:5],
        "started": started,
        "finished": finished,
        "makespan_s": finished - started,
        "cpu_s": cpu,
        "cpu_s_per_call": cpu / max(1, len(requests)),
        "peak_pss_bytes": max(peak["pss"], info.pss),
        "peak_rss_bytes": max(
            peak["rss"], info.rss, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        ),
    }
    Path(args.out).write_text(json.dumps(result))
    return 0 if not errors else 1


if __name__ == "__main__":
    sys.exit(main())
