"""The thread executor's stop, as a step thread sees it."""

import threading
import time

from dagster import DagsterExecutionInterruptedError

from passport_pipeline import stop_signal


def in_a_thread(target) -> object:
    """Run ``target`` in a new thread (a fresh context, as a step thread has); its result."""
    result = {}

    def run():
        try:
            result["value"] = target()
        except BaseException as error:  # handed back to the test
            result["value"] = error

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(timeout=30)
    assert not thread.is_alive()
    return result["value"]


def test_outside_a_step_thread_nothing_is_stopped():
    assert not stop_signal.stop_requested()
    stop_signal.raise_if_stopped()  # no error


def test_a_step_thread_answers_to_its_own_run_stop_only():
    stopped, running = threading.Event(), threading.Event()
    stopped.set()

    def step(stop):
        def body():
            stop_signal.carry(stop)
            stop_signal.raise_if_stopped()
            return "went on"

        return body

    assert isinstance(in_a_thread(step(stopped)), DagsterExecutionInterruptedError)
    assert in_a_thread(step(running)) == "went on"
    assert not stop_signal.stop_requested()  # the test's own thread carries neither


def test_a_stop_cuts_a_retry_wait_short():
    stop = threading.Event()
    threading.Timer(0.2, stop.set).start()

    def wait():
        stop_signal.carry(stop)
        started = time.monotonic()
        stop_signal.sleep(60)
        return time.monotonic() - started

    waited = in_a_thread(wait)
    assert waited < 30  # far less than the minute asked for: the stop ended it
    assert stop.is_set()
