"""A throwaway deployment for whole-job tests and bench/: the operators' commands in subprocesses.

Each test (and each benchmark run) gets its own DAGSTER_HOME, PASSPORT_HOME and environment;
this is the one place that writes an instance's dagster.yaml. The instance is the
checkout's dagster.yaml (sqlite under DAGSTER_HOME) or, given ``instance_url``, the production
``deploy/dagster.yaml`` on that PostgreSQL database (through ``DAGSTER_PG_URL``). Tests drive
the job exactly as an operator would: ``dagster job execute`` on the default (threads) executor
unless a test names another,
``python -m passport_pipeline.cli.reexecute``, ``... progress``.
"""

from __future__ import annotations

import functools
import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import weakref
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import requests
from dagster import DagsterEventType, DagsterInstance, DagsterRun

from passport_pipeline.covers.progress import latest_run_id, report_for
from passport_pipeline.domain.months import Month
from passport_pipeline_tests.support.waiting import wait_for

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
TEST_KEY_SECRET = "deployment-test-secret-0123456789"


def isolated_environ() -> dict[str, str]:
    """This process's environment without any of the pipeline's own settings."""
    return {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("PASSPORT_", "GEMINI_", "AWS_", "DAGSTER_"))
    }


@dataclass
class Deployment:
    root: Path
    env: dict[str, str] = field(default_factory=dict)
    _instance: DagsterInstance | None = field(default=None, repr=False, compare=False)

    @classmethod
    def create(
        cls,
        root: Path,
        instance_url: str | None = None,
        extra_instance_yaml: str | None = None,
        **variables: str,
    ) -> Deployment:
        """The instance: the checkout's dagster.yaml (sqlite), or with ``instance_url`` the
        production deploy/dagster.yaml on that database; ``extra_instance_yaml`` is appended
        (the benchmark's experiments with instance settings). ``variables`` win over ours."""
        dagster_home = root / "dagster"
        dagster_home.mkdir(parents=True)
        instance_config = REPO / ("deploy/dagster.yaml" if instance_url else "dagster.yaml")
        config = instance_config.read_text()
        if extra_instance_yaml:
            config += "\n" + extra_instance_yaml
        (dagster_home / "dagster.yaml").write_text(config)
        env = isolated_environ()
        if instance_url:
            env["DAGSTER_PG_URL"] = instance_url
        env.update(
            DAGSTER_HOME=str(dagster_home),
            PASSPORT_HOME=str(root / "home"),
            PASSPORT_KEY_SECRET=TEST_KEY_SECRET,
            # A fresh deployment's pace starts at a start a second: the fake answers at once,
            # so the tests start it at a thousand a second (the pace itself is
            # resources/test_pacing.py's, the slow start's width test_breaker.py's).
            GEMINI_START_RATE="60000",
            # A command that does not end can be asked for its threads' stacks (SIGABRT):
            # ``ended_or_stacks`` below.
            PYTHONFAULTHANDLER="1",
        )
        env.update(variables)
        return cls(root, env)

    @classmethod
    def with_gemini(
        cls,
        root: Path,
        database_url: str,
        gemini_base_url: str,
        api_key: str,
        instance_url: str | None = None,
        **variables: str,
    ) -> Deployment:
        """The production wiring: PostgreSQL app database, Gemini at ``gemini_base_url``."""
        return cls.create(
            root,
            instance_url,
            PASSPORT_DATABASE_URL=database_url,
            PASSPORT_IMAGE_MODEL="gemini",
            GEMINI_BASE_URL=gemini_base_url,
            GEMINI_API_KEY=api_key,
            **variables,
        )

    @property
    def dagster_home(self) -> Path:
        return Path(self.env["DAGSTER_HOME"])

    def start(self, *args: str) -> subprocess.Popen:
        return subprocess.Popen(
            list(args),
            cwd=REPO,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def run(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        return subprocess.run(
            list(args),
            cwd=REPO,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def month_command(self, month: str, config: dict | None = None) -> list[str]:
        args = [
            str(BIN / "dagster"),
            "job",
            "execute",
            "-m",
            "passport_pipeline.definitions",
            "-j",
            "monthly_passport_covers",
            "--tags",
            json.dumps({"dagster/partition": month}),
        ]
        if config is not None:
            config_file = self.root / f"config-{len(list(self.root.glob('config-*')))}.json"
            config_file.write_text(json.dumps(config))
            args += ["-c", str(config_file)]
        return args

    def execute_month(self, month: str, config: dict | None = None) -> subprocess.CompletedProcess:
        return self.run(*self.month_command(month, config))

    def set_pool_limit(self, limit: int, from_the_shell: bool = False) -> None:
        """The pool's limit, as `dagster instance concurrency set gemini N` sets it: the same
        storage call, in this process (a command costs a process start of about 2.5 s of CPU),
        or ``from_the_shell`` where the operator's command is under test."""
        if from_the_shell:
            completed = self.run(
                str(BIN / "dagster"), "instance", "concurrency", "set", "gemini", str(limit)
            )
            assert completed.returncode == 0, completed.stdout + completed.stderr
            return
        with self.instance() as instance:
            instance.event_log_storage.set_concurrency_slots("gemini", limit)

    def reexecute_command(self, run_id: str) -> list[str]:
        return [sys.executable, "-m", "passport_pipeline.cli.reexecute", run_id]

    def reexecute(self, run_id: str) -> subprocess.CompletedProcess:
        return self.run(*self.reexecute_command(run_id))

    def progress(self, month: str) -> dict:
        """The month's progress as ``python -m passport_pipeline.cli.progress --partition MONTH
        --covers --json`` prints it, read in this process (the command is a process start of
        seconds; ``progress_from_the_shell`` runs it, and a test checks the two agree)."""
        with self.instance() as instance:
            run_id = latest_run_id(instance, Month.parse(month))
            assert run_id is not None, f"no run of the covers for {month}"
            report = report_for(instance, run_id, Month.parse(month), True)
        return json.loads(json.dumps(report, default=str))

    def progress_from_the_shell(self, month: str) -> dict:
        """What the operator's command prints for the month, as JSON."""
        completed = self.run(
            sys.executable,
            "-m",
            "passport_pipeline.cli.progress",
            "--partition",
            month,
            "--covers",
            "--json",
        )
        assert completed.returncode == 0, completed.stderr
        return json.loads(completed.stdout)

    @contextmanager
    def webserver(self, startup_timeout: float = 240, with_daemon: bool = True) -> Iterator[int]:
        """``dagster-webserver`` and ``dagster-daemon run`` (which starts queued runs) on this
        deployment; yields the webserver's port once the code location is loaded. Both, and
        every process they start (code servers, runs), are stopped on the way out.
        ``with_daemon=False``: the webserver alone (a test that kills and restarts the daemon
        runs it with ``daemon()``)."""
        port = free_port()
        workspace = ["-w", str(REPO / "workspace.yaml")]
        # Two processes creating a fresh sqlite storage at once collide: create it first.
        with self.instance():
            pass
        processes = [
            self._serve(
                "webserver", "dagster-webserver", *workspace, "-h", "127.0.0.1", "-p", str(port)
            )
        ]
        try:
            _wait_for_location(f"http://127.0.0.1:{port}/graphql", processes[0], startup_timeout)
            if with_daemon:
                processes.append(self._serve("daemon", "dagster-daemon", "run", *workspace))
            yield port
        finally:
            for process in processes:
                _stop_group(process)

    @contextmanager
    def daemon(self, log_name: str = "daemon") -> Iterator[subprocess.Popen]:
        """``dagster-daemon run`` alone (schedules, sensors, the run queue); stopped, with every
        process it started, on the way out — a restart is two of these in a row."""
        with self.instance():  # create the storage before the daemon's processes race to
            pass
        workspace = ["-w", str(REPO / "workspace.yaml")]
        process = self._serve(log_name, "dagster-daemon", "run", *workspace)
        try:
            yield process
        finally:
            _stop_group(process)

    def _serve(self, name: str, command: str, *args: str) -> subprocess.Popen:
        # A session of its own: the group holds the code servers and runs it starts.
        with (self.root / f"{name}.log").open("w") as log:
            return subprocess.Popen(
                [str(BIN / command), *args],
                cwd=REPO,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    @contextmanager
    def environment(self) -> Iterator[None]:
        """This process's environment as the deployment's commands see it: for a command's
        ``main`` called in this process where the command's start is not what a test checks."""
        saved = dict(os.environ)
        os.environ.clear()
        os.environ.update(self.env)
        try:
            yield
        finally:
            os.environ.clear()
            os.environ.update(saved)

    @contextmanager
    def instance(self) -> Iterator[DagsterInstance]:
        """The deployment's instance, opened once and kept: tests poll it many times a second,
        and opening it costs 40-60 ms of CPU against about 1.5 ms for a read (its storages
        connect per call, so a kept instance holds no connection between reads)."""
        if self._instance is None:
            # The config reads DAGSTER_PG_URL from this process's environment.
            with self.environment():
                self._instance = DagsterInstance.from_config(str(self.dagster_home))
            weakref.finalize(self, self._instance.dispose)
        yield self._instance

    def runs(self) -> list[DagsterRun]:
        """Every run, oldest first."""
        with self.instance() as instance:
            return list(reversed(instance.get_runs()))

    def step_keys(self, run_id: str, event_type: DagsterEventType) -> list[str]:
        with self.instance() as instance:
            return sorted(
                entry.dagster_event.step_key
                for entry in instance.all_logs(run_id, of_type=event_type)
            )

    def event_log_text(self) -> str:
        """Every event of every run, serialized: what the UI and the event log store."""
        with self.instance() as instance:
            return "\n".join(
                entry.to_json()
                for run in instance.get_runs()
                for entry in instance.all_logs(run.run_id)
            )

    def files_containing(self, needle: str) -> list[Path]:
        """Files under the deployment (instance storage, compute logs, home) holding ``needle``."""
        hits = []
        for path in self.root.rglob("*"):
            if path.is_file() and needle.encode() in path.read_bytes():
                hits.append(path)
        return hits


def ended_or_stacks(process: subprocess.Popen, timeout_s: float) -> str:
    """The output of a command that ends within ``timeout_s``. One that does not fails the test
    with what each of its processes was doing: their states, then every Python thread's stack
    (SIGABRT, which faulthandler answers in a deployment's processes), then its output."""
    try:
        return process.communicate(timeout=timeout_s)[0]
    except subprocess.TimeoutExpired:
        pass
    tree = [psutil.Process(process.pid), *psutil.Process(process.pid).children(recursive=True)]
    states = []
    for member in tree:
        with suppress(psutil.Error):
            states.append(f"{member.pid} {member.status()} {' '.join(member.cmdline()[:8])}")
    for member in tree:  # each Python process prints its threads' stacks and ends
        with suppress(psutil.Error):
            member.send_signal(signal.SIGABRT)
    try:  # (communicate keeps what it read before a timeout: this is the whole output)
        output = process.communicate(timeout=30)[0] or ""
    except subprocess.TimeoutExpired:
        kill_pid_with_children(process.pid)
        output = process.communicate(timeout=30)[0] or ""
    raise AssertionError(
        f"the command did not end within {timeout_s} s; its processes:\n"
        + "\n".join(states)
        + f"\nand their stacks and output:\n{output[-20000:]}"
    )


def kill_with_children(process: subprocess.Popen) -> None:
    """kill -9 of a command and every process under it (a closed terminal, an OOM kill)."""
    kill_pid_with_children(process.pid, reap=process)


def kill_pid_with_children(pid: int, reap: subprocess.Popen | None = None) -> None:
    """kill -9 of a process (ours to ``reap``, or one the daemon started) and every process
    under it."""
    group = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    for member in group:
        member.kill()
    if reap is not None:
        reap.communicate(timeout=30)
    psutil.wait_procs(group, timeout=30)


# Ports for the servers a test starts in another process (webserver, exporter, Prometheus):
# outside the kernel's ephemeral range, in a block for each xdist worker (up to 8 workers).
_PORT_BLOCK = 1000
_next_ports = itertools.count()


@functools.cache
def _first_test_port() -> int:
    low, high = map(int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    if low - 1024 >= 8 * _PORT_BLOCK:
        return low - 8 * _PORT_BLOCK
    if 65535 - high >= 8 * _PORT_BLOCK:
        return high + 1
    raise RuntimeError(f"no room for test ports beside the ephemeral range {low}-{high}")


def free_port() -> int:
    """A port nothing uses now, that nothing but this test will take before its server binds it.

    A port the kernel handed out (``bind`` to port 0) goes back to its ephemeral range, where
    the next outgoing connection of any process may take it before the server binds it: a full
    suite once failed so ("cannot listen on 0.0.0.0:46335: Address already in use"). Ports here
    come from outside that range, from this worker's own block, each checked free."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
    first = _first_test_port() + (int(worker) if worker.isdigit() else 0) % 8 * _PORT_BLOCK
    for _ in range(_PORT_BLOCK):
        port = first + next(_next_ports) % _PORT_BLOCK
        with socket.socket() as probe:
            try:
                probe.bind(("0.0.0.0", port))
            except OSError:
                continue  # a service of the machine's, or a server still closing
            return port
    raise RuntimeError(f"no free port in {first}-{first + _PORT_BLOCK - 1}")


def _wait_for_location(url: str, process: subprocess.Popen, timeout: float) -> None:
    query = "{ repositoriesOrError { ... on RepositoryConnection { nodes { name } } } }"

    def loaded() -> bool:
        try:
            answer = requests.post(url, json={"query": query}, timeout=5)
        except requests.RequestException:
            return False
        return answer.ok and bool(answer.json()["data"]["repositoriesOrError"].get("nodes"))

    wait_for(loaded, "the webserver to load the code location", timeout, 1, process)


def _stop_group(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
    except ProcessLookupError:
        return
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    # Children (a code server, a run) may outlive the leader: the group goes with it.
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
