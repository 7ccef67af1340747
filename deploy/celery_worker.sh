#!/bin/sh
# A worker machine's one command (README, "More machines"): runs the cover steps that any run of
# this deployment sends to the broker, 50 at a time, each in a thread of this one process.
#
# Needs this checkout installed (`make install`, or `pip install .`), DAGSTER_HOME with
# deploy/dagster.yaml and DAGSTER_PG_URL, PASSPORT_EXECUTOR=celery, PASSPORT_CELERY_BROKER (and
# PASSPORT_CELERY_BACKEND if not rpc://), and the same PASSPORT_*, GEMINI_* and AWS_* variables as
# the machine that launches runs. Extra arguments go to `celery worker`, e.g. `-n gpu-7@%h`.
#
# Threads, not processes: a step waits on Gemini for up to two minutes, and 50 threads need
# about 0.35 GiB where 50 prefork processes took more than 5 GiB (issue 9). The pool `gemini`
# caps what runs at once across every worker, so -c only needs to reach the pool's limit.
# SIGTERM (a redeploy) lets the steps in flight finish; a worker that dies instead loses nothing:
# its tasks are acknowledged only when they end, so the broker hands them to another worker.
set -eu
exec "${PYTHON:-python}" -m celery -A passport_pipeline.execution.celery_worker worker \
    --pool threads --concurrency 50 --queues dagster \
    --without-gossip --without-mingle --loglevel INFO "$@"
