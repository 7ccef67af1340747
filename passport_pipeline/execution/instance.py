"""The deployment's Dagster instance class (``instance_class`` in ``deploy/dagster.yaml``).

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
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence

from dagster import DagsterInstance

from passport_pipeline.dagster_internals import InstanceRef

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
        return InstanceRef.config_defaults(base_dir)

    def get_yaml_python_handlers(self) -> Sequence[logging.Handler]:
        key = repr(self.get_python_log_dagster_handler_config())
        with _configuring:
            if key not in _configured:
                _configured[key] = super().get_yaml_python_handlers()
            return _configured[key]
