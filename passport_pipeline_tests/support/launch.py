"""A launch of one month of the covers in process, as the schedule, the UI or a sensor makes it
(tests and bench/ share it)."""

from __future__ import annotations

from pathlib import Path

from dagster import AssetsDefinition, DagsterInstance, materialize

from passport_pipeline.resources.app_db import AppDatabase
from passport_pipeline.resources.cover_keys import CoverKeys
from passport_pipeline.resources.image_model import LocalImageModel
from passport_pipeline.resources.image_store import LocalImageStore
from passport_pipeline.resources.pending_covers import PendingCovers


def local_resources_for(db_url: str, store_root) -> dict:
    """The embedded resources on a given app database and store folder."""
    return {
        "app_db": AppDatabase(url=db_url),
        "image_model": LocalImageModel(),
        "image_store": LocalImageStore(root=str(store_root)),
        "cover_keys": CoverKeys(secret="test-secret-0123456789abcdef"),
        "pending_covers": PendingCovers(root=str(Path(store_root).parent / "pending")),
    }


def materialize_month(
    covers: AssetsDefinition,
    resources: dict,
    instance: DagsterInstance,
    month: str,
    run_config: dict | None = None,
    tags: dict | None = None,
):
    """The month's run; its result, whether it succeeded or not."""
    return materialize(
        [covers],
        resources=resources,
        instance=instance,
        partition_key=month,
        run_config=run_config,
        tags=tags,
        raise_on_error=False,
    )
