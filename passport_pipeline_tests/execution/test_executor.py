"""The step processes' preload list follows the configured resources; loaded heaps are frozen."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

from passport_pipeline.definitions import resources_for
from passport_pipeline.execution.executor import FREEZE_MODULE, step_preload_modules
from passport_pipeline.settings import load_settings

LOCAL = {}
PRODUCTION = {
    "PASSPORT_DATABASE_URL": "postgresql+psycopg2://postgres@127.0.0.1:5432/app",
    "PASSPORT_IMAGE_MODEL": "gemini",
    "PASSPORT_IMAGE_STORE": "s3",
    "PASSPORT_S3_BUCKET": "covers",
    "PASSPORT_KEY_SECRET": "preload-test-secret-0123456789",
}


@pytest.mark.parametrize(
    ("env", "present", "absent"),
    [
        (
            LOCAL,
            ["sqlalchemy.dialects.sqlite.pysqlite", "passport_pipeline.render.cover"],
            ["boto3", "requests", "psycopg2"],
        ),
        (
            PRODUCTION,
            [
                "sqlalchemy.dialects.postgresql.psycopg2",
                "psycopg2",
                "requests",
                "tenacity",
                "boto3",
            ],
            ["passport_pipeline.render.cover", "sqlite3"],
        ),
    ],
)
def test_preload_follows_the_resources(tmp_path, env, present, absent):
    modules = step_preload_modules(
        resources_for(load_settings({"PASSPORT_HOME": str(tmp_path), **env}))
    )
    assert modules[0] == "passport_pipeline.definitions"
    assert set(present) <= set(modules)
    assert not set(absent) & set(modules)
    assert len(modules) == len(set(modules))


@pytest.mark.parametrize("env", [LOCAL, PRODUCTION])
def test_every_preloaded_module_imports(tmp_path, env):
    settings = load_settings({"PASSPORT_HOME": str(tmp_path), **env})
    for module in step_preload_modules(resources_for(settings)):
        if module != FREEZE_MODULE:  # imported in a subprocess below: it freezes the heap
            importlib.import_module(module)


def test_the_forkserver_freezes_its_heap_after_everything_else_is_loaded(tmp_path):
    modules = step_preload_modules(resources_for(load_settings({"PASSPORT_HOME": str(tmp_path)})))
    assert modules[-1] == FREEZE_MODULE
    code = (
        "import gc, importlib; before = gc.get_freeze_count(); "
        f"importlib.import_module({FREEZE_MODULE!r}); "
        "print(before, gc.get_freeze_count())"
    )
    completed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    before, after = map(int, completed.stdout.split())
    assert before == 0 and after > 1000


def test_the_definitions_freeze_what_they_loaded_and_later_garbage_is_still_collected():
    # Every process that loads the code location keeps its imports out of the collector
    # (execution/long_lived_heap.py; bench/probe_frozen_heap_cpu.py measures the CPU it saves);
    # what the process makes afterwards, a step's reference cycles, is collected as before.
    code = (
        "import gc, weakref, passport_pipeline.definitions\n"
        "frozen = gc.get_freeze_count()\n"
        "class Node: pass\n"
        "a, b = Node(), Node(); a.other, b.other = b, a\n"
        "alive = weakref.ref(a); del a, b\n"
        "gc.collect()\n"
        "print(frozen, alive() is None)"
    )
    completed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    frozen, collected = completed.stdout.split()
    assert int(frozen) > 100_000
    assert collected == "True"
