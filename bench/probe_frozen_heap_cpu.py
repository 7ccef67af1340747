"""Probe: what ``gc.freeze()`` of the loaded code (execution/long_lived_heap.py) saves in CPU.

    .venv/bin/python bench/probe_frozen_heap_cpu.py [--trials 5]

Two commands, each run ``--trials`` times with the heap frozen (as shipped) and not (a
``sitecustomize`` on PYTHONPATH makes ``gc.freeze`` a no-op), alternating, on the embedded
defaults in a temporary home:

- ``import passport_pipeline.definitions`` and exit: what every process that loads the code
  location pays before it does anything;
- ``dagster job execute`` of the demo month, every cover already stored (the first run, not
  timed, drew them): the whole run, nothing paid.

Prints the median CPU (user + system of the whole process tree, ``bench/reaper.py``) of each
and the ratio.
About a minute; the machine should be otherwise idle.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
MONTH = "2026-10"


def cpu_of(command: list[str], env: dict[str, str], out: Path) -> float:
    """The user + system CPU of ``command``'s whole process tree (bench/reaper.py)."""
    reaper = [sys.executable, str(REPO / "bench" / "reaper.py"), str(out), "--"]
    completed = subprocess.run(reaper + command, cwd=REPO, env=env, capture_output=True, text=True)
    if completed.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{completed.stderr[-3000:]}")
    usage = json.loads(out.read_text())
    return usage["utime"] + usage["stime"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "unfrozen").mkdir()
        (root / "unfrozen" / "sitecustomize.py").write_text("import gc\ngc.freeze = lambda: None\n")
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("PASSPORT_", "DAGSTER_"))},
            "PASSPORT_HOME": str(root / "home"),
            "DAGSTER_HOME": str(root / "dagster"),
        }
        (root / "dagster").mkdir()
        shutil.copy(REPO / "dagster.yaml", root / "dagster" / "dagster.yaml")
        run = [
            str(BIN / "dagster"),
            *("job", "execute", "-m", "passport_pipeline.definitions"),
            *("-j", "monthly_passport_covers", "--tags", f'{{"dagster/partition": "{MONTH}"}}'),
            *("-c", str(REPO / "passport_pipeline/demo/quiet_console.yaml")),
        ]
        usage = root / "usage.json"
        cpu_of([sys.executable, "-m", "passport_pipeline.demo.seed"], env, usage)
        cpu_of(run, env, usage)  # draws and stores the month's covers: later runs reuse them
        commands = {
            "import the definitions, exit": [
                sys.executable,
                "-c",
                "import passport_pipeline.definitions",
            ],
            "a month's run, covers stored": run,
        }
        variants = {"frozen": env, "unfrozen": {**env, "PYTHONPATH": str(root / "unfrozen")}}
        for label, command in commands.items():
            cpu: dict[str, list[float]] = {name: [] for name in variants}
            for _ in range(args.trials):
                for name, variant_env in variants.items():
                    cpu[name].append(cpu_of(command, variant_env, usage))
            frozen, unfrozen = (statistics.median(cpu[name]) for name in ("frozen", "unfrozen"))
            print(
                f"{label}: frozen {frozen:.2f} s CPU, unfrozen {unfrozen:.2f} s "
                f"(medians of {args.trials}); frozen / unfrozen = {frozen / unfrozen:.2f}"
            )


if __name__ == "__main__":
    main()
