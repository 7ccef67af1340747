"""The code location loads, validates, and importing it has no side effects."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime

import pytest
import yaml
from dagster import (
    DefaultScheduleStatus,
    DefaultSensorStatus,
    build_schedule_context,
    validate_run_config,
)

from passport_pipeline.dagster_internals import default_values_yaml_from_type_snap
from passport_pipeline.definitions import build_definitions, defs
from passport_pipeline.domain.months import SEOUL
from passport_pipeline.resources.gemini import GeminiImageModel
from passport_pipeline.resources.gemini_batch import GeminiBatchImageModel
from passport_pipeline.resources.s3_store import S3ImageStore
from passport_pipeline.settings import SettingsError, load_settings

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_dagster_definitions_validate(tmp_path):
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path), "PASSPORT_HOME": str(tmp_path / "home")}
    completed = subprocess.run(
        [
            os.path.join(os.path.dirname(sys.executable), "dagster"),
            "definitions",
            "validate",
            "-m",
            "passport_pipeline.definitions",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "Validation successful" in completed.stdout + completed.stderr


def test_the_job_schedule_and_asset_are_defined():
    job = defs.resolve_job_def("monthly_passport_covers")
    assert job.partitions_def.get_partition_keys()[0] == "2024-01"
    schedule = defs.resolve_schedule_def("monthly_passport_covers_schedule")
    assert schedule.default_status is DefaultScheduleStatus.RUNNING
    assert schedule.execution_timezone == "Asia/Seoul"
    [covers] = [
        spec for spec in defs.resolve_all_asset_specs() if spec.key.path == ["passport_covers"]
    ]
    assert covers.partitions_def == job.partitions_def
    sensor = defs.resolve_sensor_def("monthly_passport_covers_failures")
    assert sensor.default_status is DefaultSensorStatus.RUNNING
    assert defs.resolve_sensor_def("monthly_passport_covers_cancellations")
    # The covers are a real, graph-backed asset: the month's users → a cover step per user
    # (pool gemini, retried) → the month's record; the job materializes it, one lane per run.
    [asset] = [
        a for a in defs.resolve_asset_graph().assets_defs if a.key.path == ["passport_covers"]
    ]
    assert asset.is_executable and asset.node_def.name == "passport_covers"
    cover_node = asset.node_def.node_named("generate_cover")
    assert cover_node.definition.pool == "gemini"
    assert cover_node.retry_policy.max_retries == 2
    assert job.tags["passport/lane"] == "covers"


@pytest.mark.parametrize(
    ("tick", "partition"),
    [
        (datetime(2026, 12, 1, 2, 0, tzinfo=SEOUL), "2026-11"),
        (datetime(2025, 1, 1, 2, 0, tzinfo=SEOUL), "2024-12"),
    ],
)
def test_schedule_runs_the_month_that_just_ended(tick, partition):
    schedule = defs.resolve_schedule_def("monthly_passport_covers_schedule")
    assert schedule.cron_schedule == "0 2 1 * *"
    with build_schedule_context(scheduled_execution_time=tick) as context:
        [request] = schedule.evaluate_tick(context).run_requests
    assert request.partition_key == partition


def test_importing_the_definitions_connects_to_nothing_and_writes_nothing(tmp_path):
    home = tmp_path / "never-created"
    env = {
        **os.environ,
        "PASSPORT_HOME": str(home),
        "PASSPORT_DATABASE_URL": "postgresql+psycopg2://postgres@127.0.0.1:5999/none",
        "PASSPORT_IMAGE_MODEL": "gemini",
        "GEMINI_BASE_URL": "http://127.0.0.1:9",
        "PASSPORT_IMAGE_STORE": "s3",
        "PASSPORT_S3_BUCKET": "covers",
        "PASSPORT_KEY_SECRET": "import-test-secret-0123456789",
    }
    env.pop("GEMINI_API_KEY", None)
    code = "import passport_pipeline.definitions as d; print(len(d.defs.jobs))"
    completed = python_in(tmp_path, env, code)
    assert completed.returncode == 0, completed.stderr
    assert not home.exists()


def test_a_process_on_the_local_store_never_imports_boto3(tmp_path):
    # Every run, step and code-server process imports the definitions: on the embedded
    # defaults it skips dagster-aws and boto3 (about 0.2 s of CPU each, measured).
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PASSPORT_", "GEMINI_"))}
    env["PASSPORT_HOME"] = str(tmp_path)
    code = (
        "import sys, passport_pipeline.definitions; "
        "print(sorted({'boto3', 'dagster_aws'} & set(sys.modules)))"
    )
    completed = python_in(tmp_path, env, code)
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == "[]"


def test_production_settings_choose_gemini_and_s3_without_reading_secrets():
    settings = load_settings(
        {
            "PASSPORT_IMAGE_MODEL": "gemini",
            "PASSPORT_IMAGE_STORE": "s3",
            "PASSPORT_S3_BUCKET": "covers",
            "PASSPORT_PUBLIC_BASE_URL": "https://cdn.example/",
            "GEMINI_API_KEY": "AIza-must-not-be-read",
            "PASSPORT_KEY_SECRET": "must-not-be-read-either-0123",
            "GEMINI_ASPECT_RATIO": "9:16",
            "GEMINI_MODEL": "gemini-3-pro-image-preview",
            "GEMINI_PRICE_PER_IMAGE_USD": "0.134",
        }
    )
    resources = build_definitions(settings).resources
    assert isinstance(resources["image_model"], GeminiImageModel)
    assert resources["image_model"].aspect_ratio == "9:16"
    assert resources["image_model"].model == "gemini-3-pro-image-preview"
    assert resources["image_model"].price_per_image_usd == 0.134
    assert isinstance(resources["image_store"], S3ImageStore)
    assert resources["image_store"].public_base_url == "https://cdn.example"
    assert "AIza-must-not-be-read" not in repr(resources)
    assert "must-not-be-read-either" not in repr(resources)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"PASSPORT_IMAGE_MODEL": "dalle"}, "PASSPORT_IMAGE_MODEL='dalle' is not one of"),
        ({"PASSPORT_IMAGE_STORE": "s3"}, "needs PASSPORT_S3_BUCKET"),
        (
            {"PASSPORT_IMAGE_STORE": "s3", "PASSPORT_S3_BUCKET": "covers"},
            "needs PASSPORT_KEY_SECRET: a shared store must use one key secret everywhere",
        ),
        ({"PASSPORT_MAX_CONCURRENT_STEPS": "0"}, "at least 1"),
        ({"PASSPORT_EXECUTOR": "forks"}, "PASSPORT_EXECUTOR='forks' is not one of"),
        ({"PASSPORT_FALLBACK_TO_LOCAL": "maybe"}, "not true or false"),
        ({"GEMINI_PRICE_PER_IMAGE_USD": "cheap"}, "not a number"),
        ({"PASSPORT_MONTH_BUDGET_USD": "-5"}, "PASSPORT_MONTH_BUDGET_USD cannot be negative"),
        ({"GEMINI_REQUEST_DEADLINE_S": "0"}, "GEMINI_REQUEST_DEADLINE_S must be more than 0"),
        ({"GEMINI_READ_TIMEOUT_S": "-1"}, "GEMINI_READ_TIMEOUT_S cannot be negative"),
        ({"GEMINI_CONNECT_TIMEOUT_S": "soon"}, "GEMINI_CONNECT_TIMEOUT_S='soon' is not a number"),
        ({"PASSPORT_MAX_IMAGE_BYTES": "20MB"}, "PASSPORT_MAX_IMAGE_BYTES='20MB' is not a whole"),
        ({"PASSPORT_QUOTA_RESUME_DAYS": "three"}, "PASSPORT_QUOTA_RESUME_DAYS='three' is not a"),
        ({"PASSPORT_QUOTA_RESUME_DAYS": "-1"}, r"must be from 0 \(never resume by itself\)"),
        ({"PASSPORT_WATCH_INTERVAL_S": "0"}, "PASSPORT_WATCH_INTERVAL_S must be more than 0"),
    ],
)
def test_bad_settings_name_the_variable(env, message):
    with pytest.raises(SettingsError, match=message):
        load_settings(env)


@pytest.mark.parametrize(("value", "budget"), [(None, None), ("", None), (" 120.5 ", 120.5)])
def test_the_month_budget_is_optional(tmp_path, value, budget):
    env = {"PASSPORT_HOME": str(tmp_path)}
    if value is not None:
        env["PASSPORT_MONTH_BUDGET_USD"] = value
    assert load_settings(env).month_budget_usd == budget


@pytest.mark.parametrize(
    ("choice", "executor_name"),
    [
        (None, "covers_threads"),
        ("threads", "covers_threads"),
        ("multiprocess", "covers_multiprocess"),
    ],
)
def test_the_executor_is_the_one_passport_executor_names(tmp_path, choice, executor_name):
    env = {"PASSPORT_HOME": str(tmp_path)}
    if choice is not None:
        env["PASSPORT_EXECUTOR"] = choice
    job = build_definitions(load_settings(env)).resolve_job_def("monthly_passport_covers")
    assert job.executor_def.name == executor_name


@pytest.mark.parametrize(("value", "days"), [(None, 3), ("0", 0), ("5", 5)])
def test_a_quota_halted_month_resumes_by_itself_as_often_as_configured(value, days):
    env = {} if value is None else {"PASSPORT_QUOTA_RESUME_DAYS": value}
    assert load_settings(env).quota_resume_days == days
    defs_ = build_definitions(load_settings(env))
    sensor = defs_.resolve_sensor_def("monthly_passport_covers_quota_resumes")
    assert sensor.default_status is DefaultSensorStatus.RUNNING
    assert f"at most {days} times a month" in sensor.description


def test_embedded_defaults(tmp_path):
    settings = load_settings({"PASSPORT_HOME": str(tmp_path)})
    assert settings.database_url == f"sqlite:///{tmp_path / 'app.sqlite3'}"
    assert (settings.image_model, settings.image_store) == ("local", "local")


def test_gemini_timeouts_and_the_image_limit_come_from_the_environment():
    settings = load_settings(
        {
            "PASSPORT_IMAGE_MODEL": "gemini",
            "GEMINI_CONNECT_TIMEOUT_S": "3",
            "GEMINI_READ_TIMEOUT_S": "90",
            "GEMINI_REQUEST_DEADLINE_S": "240",
            "PASSPORT_MAX_IMAGE_BYTES": "5000000",
        }
    )
    model = build_definitions(settings).resources["image_model"]
    assert (model.connect_timeout_s, model.read_timeout_s, model.request_deadline_s) == (3, 90, 240)
    assert model.max_image_bytes == 5_000_000


def test_batch_mode_uses_gemini_at_the_batch_price_and_adds_the_batch_sensors():
    settings = load_settings({"PASSPORT_IMAGE_MODEL": "gemini-batch"})
    definitions = build_definitions(settings)
    model = definitions.resources["image_model"]
    assert isinstance(model, GeminiBatchImageModel)
    # The Batch API's price is half the direct one: that is why an operator chooses it.
    assert model.batch_price_per_image_usd == model.price_per_image_usd / 2
    poller = definitions.resolve_sensor_def("monthly_passport_covers_batches")
    assert poller.default_status is DefaultSensorStatus.RUNNING
    assert definitions.resolve_sensor_def("monthly_passport_covers_batch_cancel")
    # Without batch mode there is nothing to poll.
    direct = build_definitions(load_settings({"PASSPORT_IMAGE_MODEL": "gemini"}))
    assert "monthly_passport_covers_batches" not in {s.name for s in direct.sensors}
    custom = load_settings(
        {
            "PASSPORT_IMAGE_MODEL": "gemini-batch",
            "GEMINI_BATCH_PRICE_PER_IMAGE_USD": "0.02",
            "GEMINI_BATCH_INLINE_LIMIT_BYTES": "1000000",
            "PASSPORT_BATCH_POLL_INTERVAL_S": "300",
        }
    )
    model = build_definitions(custom).resources["image_model"]
    assert (model.batch_price_per_image_usd, model.inline_limit_bytes) == (0.02, 1_000_000)
    with pytest.raises(SettingsError, match="PASSPORT_BATCH_POLL_INTERVAL_S must be more than 0"):
        load_settings({"PASSPORT_BATCH_POLL_INTERVAL_S": "0"})


CELERY_ENV = {
    "PASSPORT_EXECUTOR": "celery",
    "PASSPORT_CELERY_BROKER": "pyamqp://deployer:broker-password-not-read@rabbit:5672//",
    "PASSPORT_DATABASE_URL": "postgresql+psycopg2://app@db:5432/app",
    "PASSPORT_IMAGE_STORE": "s3",
    "PASSPORT_S3_BUCKET": "covers",
    "PASSPORT_S3_PREFIX": "prod",
    "PASSPORT_KEY_SECRET": "celery-test-secret-0123456789",
}


def test_celery_runs_steps_on_workers_and_keeps_step_records_in_s3():
    from dagster_aws.s3 import S3PickleIOManager

    defs = build_definitions(load_settings(CELERY_ENV))
    job = defs.resolve_job_def("monthly_passport_covers")
    assert job.executor_def.name == "covers_celery"
    io_manager = defs.resources["io_manager"]
    assert isinstance(io_manager, S3PickleIOManager)
    assert (io_manager.s3_bucket, io_manager.s3_prefix) == ("covers", "prod/dagster-step-records")
    # The broker URL may hold a password: the settings keep no copy of it.
    assert "broker-password-not-read" not in repr(load_settings(CELERY_ENV))


def test_the_default_executor_keeps_step_records_where_dagster_does():
    settings = load_settings({"PASSPORT_HOME": "/tmp/none"})
    assert settings.executor == "threads"
    assert "io_manager" not in build_definitions(settings).resources


@pytest.mark.parametrize(
    ("drop", "change", "message"),
    [
        ("PASSPORT_CELERY_BROKER", {}, "PASSPORT_EXECUTOR=celery needs PASSPORT_CELERY_BROKER"),
        ("PASSPORT_DATABASE_URL", {}, "needs PASSPORT_DATABASE_URL: the embedded sqlite"),
        (None, {"PASSPORT_IMAGE_STORE": "local"}, "needs PASSPORT_IMAGE_STORE=s3"),
        (None, {"PASSPORT_EXECUTOR": "dask"}, "PASSPORT_EXECUTOR='dask' is not one of"),
    ],
)
def test_celery_refuses_what_only_one_machine_has(drop, change, message):
    env = {key: value for key, value in CELERY_ENV.items() if key != drop}
    with pytest.raises(SettingsError, match=message):
        load_settings({**env, **change})


def test_the_worker_app_takes_the_broker_of_its_environment(tmp_path):
    env = {**os.environ, **CELERY_ENV, "PASSPORT_CELERY_BACKEND": "redis://127.0.0.1:6379/9"}
    code = (
        "from passport_pipeline.execution.celery_worker import app, execute_plan\n"
        "print(app.conf.broker_url, app.conf.result_backend, app.conf.task_acks_late,"
        " app.conf.worker_prefetch_multiplier, execute_plan.name)"
    )
    completed = python_in(tmp_path, env, code)
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.split() == [
        CELERY_ENV["PASSPORT_CELERY_BROKER"],
        "redis://127.0.0.1:6379/9",
        "True",
        "1",
        "execute_plan",
    ]


def python_in(cwd, env: dict, code: str) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter, as a deployment's process would start."""
    return subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=cwd,
    )


def launchpad_scaffold(job) -> str:
    """The run config the Launchpad opens with: the webserver's ``rootDefaultYaml``."""
    snapshot = job.get_job_snapshot()
    schema = snapshot.config_schema_snapshot
    root = schema.get_config_snap(snapshot.mode_def_snaps[0].root_config_key)
    return default_values_yaml_from_type_snap(schema, root)


def plain_scalars(value):
    """Every string of the config, as a YAML writer that quotes nothing would write it."""
    if isinstance(value, dict):
        for item in value.values():
            yield from plain_scalars(item)
    elif isinstance(value, str):
        yield value


@pytest.mark.parametrize("model", ["local", "gemini", "gemini-batch"])
def test_the_launchpads_scaffold_launches_as_it_opens(tmp_path, monkeypatch, model):
    monkeypatch.setenv(
        "GEMINI_API_KEY", "AIzaTEST-scaffold-key-0001112223"
    )  # the scaffold's {env:}
    env = {"PASSPORT_HOME": str(tmp_path), "PASSPORT_IMAGE_MODEL": model}
    job = build_definitions(load_settings(env)).resolve_job_def("monthly_passport_covers")
    config = yaml.safe_load(launchpad_scaffold(job))
    assert validate_run_config(job, config)
    # The Launchpad rewrites the scaffold (picking a partition merges YAML in the browser): a
    # string only survives if it reads back as itself unquoted, as YAML 1.1 would read it.
    for text in plain_scalars(config):
        assert yaml.safe_load(f"value: {text}")["value"] == text, text
    if model != "local":
        assert config["resources"]["image_model"]["config"]["aspect_ratio"] == "RATIO_3_4"


def test_partitions_start_at_the_configured_first_month(tmp_path):
    env = {"PASSPORT_HOME": str(tmp_path), "PASSPORT_FIRST_MONTH": "2026-01"}
    job = build_definitions(load_settings(env)).resolve_job_def("monthly_passport_covers")
    assert job.partitions_def.get_partition_keys()[0] == "2026-01"


def test_every_sensor_says_what_it_does_in_the_ui():
    descriptions = {sensor.name: sensor.description for sensor in defs.sensors}
    assert all(descriptions.values()), descriptions
    assert len(set(descriptions.values())) == len(descriptions)  # no two read as synonyms
