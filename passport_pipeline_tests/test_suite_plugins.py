"""The suite's own machinery under a hung test: ``make test``'s settings (two workers, groups,
pytest-timeout's ``thread`` method) on a small project of its own, with the limit at 2 s.

The hung test fails by name, the test queued behind it on the same worker still runs, and the
run ends: it once waited forever instead (``support/crash_safe_groups.py``). And the ports the
tests' servers listen on are ones no other process is handed in the meantime.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

from passport_pipeline_tests.support.deployment import REPO, free_port

QUICK = "def test_{n}():\n    pass\n"


def test_a_hung_test_fails_by_name_and_the_suite_still_ends(tmp_path):
    (tmp_path / "pytest.ini").write_text("[pytest]\ntimeout = 2\ntimeout_method = thread\n")
    for module in "abc":
        (tmp_path / f"test_{module}.py").write_text("".join(QUICK.format(n=n) for n in range(3)))
    (tmp_path / "test_grouped.py").write_text(
        textwrap.dedent(
            """
            import time

            import pytest

            pytestmark = pytest.mark.xdist_group("one_deployment")


            def test_before():
                pass


            def test_hangs():
                time.sleep(600)


            def test_after_the_hang():
                pass
            """
        )
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "pytest", "-n", "2", "--dist", "loadgroup", "-rf"]
    plugin = ["-p", "passport_pipeline_tests.support.crash_safe_groups", "-p", "no:cacheprovider"]
    ended = subprocess.run(
        [*command, *plugin],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,  # without the plugin the run never ends
    )
    out = ended.stdout
    assert ended.returncode == 1, out[-3000:] + ended.stderr[-3000:]
    assert "FAILED test_grouped.py::test_hangs" in out
    assert "1 failed, 11 passed" in out


def test_servers_get_ports_outside_the_kernels_ephemeral_range_that_nothing_holds():
    low, high = map(int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    ports = [free_port() for _ in range(3)]
    assert len(set(ports)) == 3
    assert not [port for port in ports if low <= port <= high]
    # A port something already listens on is passed over.
    with socket.socket() as held:
        held.bind(("0.0.0.0", ports[-1] + 1))
        held.listen()
        assert free_port() not in {*ports, ports[-1] + 1}
