"""Probe: does ``gc.freeze()`` in the forkserver keep forked step workers' memory shared?

    .venv/bin/python bench/probe_gc_freeze.py

Starts a multiprocessing forkserver that preloads what a cover step imports (as the job's
executor does), forks 4 children that each run ``gc.collect()`` (as any step worker does sooner
or later), and prints their RSS / PSS / Private_Dirty, once without and once with a last
preloaded module that calls ``gc.collect(); gc.freeze()``. A collection in the child writes to
every tracked object's header, so without the freeze each child copies most of the forkserver's
heap (copy-on-write) and its PSS is nearly its RSS.
"""

from __future__ import annotations

import gc
import multiprocessing as mp
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PRELOAD = [
    "passport_pipeline.definitions",
    "dagster._core.executor.child_process_executor",
    "dagster._core.executor.multiprocess",
    "dagster._core.instance.factory",
    "dagster._cli.api",
    "sqlalchemy.dialects.postgresql.psycopg2",
    "requests",
    "PIL.PngImagePlugin",
]


def child(queue) -> None:
    gc.collect()
    time.sleep(0.5)
    with open(f"/proc/{os.getpid()}/smaps_rollup") as handle:
        fields = {
            line.split(":")[0]: int(line.split()[1])
            for line in handle
            if len(line.split()) == 3 and line.split()[0].endswith(":")
        }
    queue.put((fields["Rss"], fields["Pss"], fields["Private_Dirty"]))
    time.sleep(1)


def probe(freeze: bool) -> None:
    modules = [*PRELOAD, "_bench_gc_freeze"] if freeze else PRELOAD
    context = mp.get_context("forkserver")
    context.set_forkserver_preload(modules)
    queue = context.Queue()
    children = [context.Process(target=child, args=(queue,)) for _ in range(4)]
    for one in children:
        one.start()
    results = [queue.get(timeout=120) for _ in children]
    for one in children:
        one.join(timeout=30)
    rss, pss, dirty = (sum(r[i] for r in results) // len(results) for i in range(3))
    label = "with gc.freeze()" if freeze else "without        "
    print(
        f"{label}: per child RSS {rss / 1024:.0f} MiB, PSS {pss / 1024:.0f} MiB, "
        f"private dirty {dirty / 1024:.0f} MiB"
    )


def main() -> int:
    if len(sys.argv) > 1:  # one probe per interpreter: a forkserver's preload is set once
        probe(sys.argv[1] == "freeze")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "_bench_gc_freeze.py").write_text("import gc\ngc.collect()\ngc.freeze()\n")
        env = {**os.environ, "PYTHONPATH": f"{tmp}:{REPO}", "PASSPORT_HOME": f"{tmp}/home"}
        for mode in ("plain", "freeze"):
            subprocess.run(
                [sys.executable, __file__, mode], env=env, cwd=REPO, check=True, timeout=300
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
