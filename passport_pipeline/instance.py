"""The deployment's Dagster instance class (``instance_class`` in ``deploy/dagster.yaml``).

It sits on top, beside ``definitions.py``: it wires a covers decision (the never-started users of
a stopped run) into the instance, so ``execution/`` (below ``covers/``) cannot hold it.

Dagster builds each step's log manager with ``DagsterInstance.get_handlers``, whose
``get_yaml_python_handlers`` calls ``logging.config.dictConfig`` every time, even when
``python_logs`` defines no handler. ``dictConfig`` closes every logging handler of the process
while it holds the logging module's lock. A Celery worker running steps in threads
(``deploy/celery_worker.sh``) starts steps while others are logging: one thread holds a step's
handler and waits for the module lock, the other holds the module lock and waits for that
handler. Measured here: two steps taken at once by a ``-P threads`` worker hung the worker,
heartbeats included, until the broker gave up on it three minutes later.

``PassportInstance`` configures those handlers once per process (they are the same every time:
they come from the instance's yaml) and hands the same ones to every step. Workers build their
instance from the run's ``InstanceRef``, which names this class, so the worker gets it too.

It also records a stopped month's never-started users *before* the run is marked failed or
canceled. Whoever marks it — the run itself, Dagster's code server when a run's process died
(``report_run_failed``, at once), run monitoring, our dead-run sensor, the UI's Terminate — the
run's status changes only when that event is stored, through ``handle_new_event``. A
"Re-execute → From failure" clicked the moment the run shows failed is planned from the parent's
event log (``dagster_internals.report_step_never_started`` says why the never-started users
must be in it): they are already there, so the plan includes them.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence

from dagster import DagsterEventType, DagsterInstance

from passport_pipeline.covers.unstarted_steps import record_stopped_run_users
from passport_pipeline.dagster_internals import InstanceRef
from passport_pipeline.execution.long_lived_heap import freeze_long_lived_heap
from passport_pipeline.execution.sqlite_storage import embedded_storage_defaults

# The events that end a run as stopped short (failed or canceled).
_STOPPED = {DagsterEventType.RUN_FAILURE, DagsterEventType.RUN_CANCELED}
_configured: dict[str, Sequence[logging.Handler]] = {}
_configuring = threading.Lock()


class PassportInstance(DagsterInstance):
    """A ``DagsterInstance`` whose yaml-defined Python log handlers are set up once per process."""

    # What Dagster asks of an ``instance_class``: no settings of its own, the stock defaults.
    @classmethod
    def config_schema(cls) -> dict:
        return {}

    @staticmethod
    def config_defaults(base_dir: str):
        # The embedded default storage claims pool slots atomically (execution/sqlite_storage.py).
        return {**InstanceRef.config_defaults(base_dir), **embedded_storage_defaults(base_dir)}

    def get_yaml_python_handlers(self) -> Sequence[logging.Handler]:
        key = repr(self.get_python_log_dagster_handler_config())
        with _configuring:
            if key not in _configured:
                _configured[key] = super().get_yaml_python_handlers()
            return _configured[key]

    def handle_new_event(self, event, **kwargs) -> None:
        """Store the event; when it ends a covers run as failed or canceled, first record the
        run's users whose step never started (see the module docstring)."""
        dagster_event = event.dagster_event
        if dagster_event is not None and dagster_event.event_type in _STOPPED:
            try:
                record_stopped_run_users(self, event.run_id)
            except Exception as error:  # the run's end must be stored whatever happens here
                logging.getLogger(__name__).warning(
                    f"could not record the never-started users of run {event.run_id}: {error}"
                )
        super().handle_new_event(event, **kwargs)


# Imported by every process that opens the deployment's instance (the webserver and the daemon
# too), after Dagster itself: what is loaded by now lives as long as the process
# (execution/long_lived_heap.py).
freeze_long_lived_heap()
