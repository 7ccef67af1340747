"""Run one command and account for the CPU of its whole process tree.

    python bench/reaper.py OUT.json -- COMMAND [ARGS...]

The wrapper makes itself a child subreaper (Linux ``PR_SET_CHILD_SUBREAPER``), so every
descendant that is orphaned (a multiprocessing forkserver outliving its parent, a step worker)
is re-parented to it and reaped by it. When the last descendant is gone,
``getrusage(RUSAGE_CHILDREN)`` holds the user+system CPU of every process the command ever
started, however short-lived. Writes ``{"rc", "utime", "stime", "maxrss_kib", "started",
"main_exited", "all_reaped", "killed_stragglers"}`` to OUT.json. SIGTERM/SIGINT are passed
on to the command. Descendants still alive 60 s after the command exited are killed.
"""

from __future__ import annotations

import ctypes
import json
import os
import resource
import signal
import subprocess
import sys
import threading
import time

PR_SET_CHILD_SUBREAPER = 36
STRAGGLER_GRACE_S = 60.0


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[1] != "--":
        print(__doc__, file=sys.stderr)
        return 2
    out_path, command = argv[0], argv[2:]
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        print("reaper: prctl(PR_SET_CHILD_SUBREAPER) failed", file=sys.stderr)
    started = time.time()
    child = subprocess.Popen(command)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda s, _f: child.poll() is None and child.send_signal(s))
    main_rc: int | None = None
    main_exited: float | None = None
    killed: list[int] = []

    def kill_stragglers() -> None:
        # Runs only once the command itself has exited.
        deadline = time.monotonic() + STRAGGLER_GRACE_S
        while time.monotonic() < deadline:
            time.sleep(1.0)
            if not _descendants():
                return
        for pid in _descendants():
            try:
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            except ProcessLookupError:
                pass

    while True:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        except InterruptedError:
            continue
        if pid == child.pid:
            main_rc = os.waitstatus_to_exitcode(status)
            child.returncode = main_rc  # Popen must not wait for it again
            main_exited = time.time()
            threading.Thread(target=kill_stragglers, daemon=True).start()
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = {
        "rc": main_rc,
        "utime": usage.ru_utime,
        "stime": usage.ru_stime,
        "maxrss_kib": usage.ru_maxrss,
        "started": started,
        "main_exited": main_exited,
        "all_reaped": time.time(),
        "killed_stragglers": killed,
    }
    with open(out_path, "w") as handle:
        json.dump(result, handle)
    return main_rc if main_rc is not None and main_rc >= 0 else 1


def _descendants() -> list[int]:
    """Pids whose parent is this process (after re-parenting, that is every descendant's root)."""
    me, found = os.getpid(), []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as handle:
                    fields = handle.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == me:
                found.append(int(entry))
    return found


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
