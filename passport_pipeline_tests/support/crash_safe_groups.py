"""pytest-xdist's ``--dist loadgroup``, made to finish after a worker dies mid-test.

A test past pytest-timeout's limit (``pyproject.toml``) is ended by killing its worker; xdist
reports the test as failed by name and starts a new worker. pytest-xdist 3.8's group scheduler
then puts the dead worker's whole workload back in its queue, tests already run included. A
unit with nothing left to run is sent to the new worker as an empty batch, which never reports
back: the suite waits forever (reproduced here: one hanging test under `-n 4 --dist loadgroup`).

Here only what the dead worker had not run goes back in the queue, and not the test it died
in: that test is already reported failed, and would most likely hang again. And a worker is
never left holding a single test: it runs a test only once it knows the next one (or that
there is none), so the new worker, sent one test, would wait for ever too.
``passport_pipeline_tests/test_suite_plugins.py`` runs a hanging test under ``-n 2`` to check
the suite ends. Registered from ``conftest.py`` (``pytest_plugins``).
"""

from __future__ import annotations

from xdist.scheduler import LoadGroupScheduling


class CrashSafeLoadGroupScheduling(LoadGroupScheduling):
    def remove_node(self, node) -> str | None:
        workload = self.assigned_work.pop(node)
        unrun = [
            (scope, nodeid)
            for scope, unit in workload.items()
            for nodeid, completed in unit.items()
            if not completed
        ]
        if not unrun:
            return None
        # The worker runs its tests in the order it was sent them: the first not run is the one
        # it died in.
        crashed = unrun[0][1]
        for scope, nodeid in unrun[1:]:
            self.workqueue.setdefault(scope, {})[nodeid] = False
        for other in self.assigned_work:
            self._reschedule(other)
        return crashed

    def _reschedule(self, node) -> None:
        super()._reschedule(node)
        if not node.shutting_down and self._pending_of(self.assigned_work[node]) < 2:
            super()._reschedule(node)  # a second unit, or the end of the queue


def pytest_xdist_make_scheduler(config, log):
    if config.getvalue("dist") == "loadgroup":
        return CrashSafeLoadGroupScheduling(config, log)
    return None
