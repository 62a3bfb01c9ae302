"""Run a server and take it down with its parent: `python -m workbook.servers.guard PARENT_PID [--reloader] -- CMD…`.

The runner starts every server through this guard in a process group of its own. If the process that
asked for the server dies (a crashed test, a restarted Jupyter kernel), the guard stops the server, so
nothing is left listening.

With --reloader the guard also does the one job of the outer process of `manage.py runserver`: that process
only starts the same command again with RUN_MAIN=true, and again each time it exits with 3 (a watched file
changed). The guard is an outer process already, so it starts that inner one itself, and a step is served after
one Django start-up instead of two (django/utils/autoreload.py: restart_with_reloader).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time

POLL = 0.25
# Django's autoreloader: the environment variable that marks the inner process, and its "start me again" exit code.
RELOADER_ENV, RESTART = "RUN_MAIN", 3
# How long a server may take to end after a Ctrl-C before the guard kills its group.
GRACE = 2.0


# psutil is imported in each function, first after the server has been started: its import is not on the way to a
# learner's first echo.
def parent_alive(parent) -> bool:
    """Tell whether psutil.Process `parent` still runs (a zombie has ended; a reused pid is another process)."""
    import psutil

    try:
        return parent.is_running() and parent.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def watch(pid: int):
    """Return the psutil.Process `pid` to watch, or None when it is already gone."""
    import psutil

    try:
        return psutil.Process(pid)
    except psutil.NoSuchProcess:
        return None


def kill(processes: list) -> None:
    import psutil

    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()


def main(argv: list[str]) -> int:
    reloader = argv[1:2] == ["--reloader"]
    parent, sep, *cmd = [*argv[:1], *argv[2:]] if reloader else argv
    if sep != "--" or not cmd:
        print("usage: python -m workbook.servers.guard PARENT_PID [--reloader] -- COMMAND…", file=sys.stderr)
        return 2
    child: subprocess.Popen | None = None

    def stop(signum=signal.SIGINT, _frame=None):
        if child is None:
            sys.exit(0)
        import psutil

        try:
            tree = [psutil.Process(child.pid), *psutil.Process(child.pid).children(recursive=True)]
        except psutil.NoSuchProcess:
            tree = []
        if os.name == "nt":
            kill(tree)
        else:
            # Pass the signal on once to everything the server spawned (its children share our group): SIGINT is
            # a Ctrl-C, which every server here handles quietly.
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, signal.SIG_IGN)
            os.killpg(0, signum)
        # Leave only once the whole tree has gone, so that our own exit means the port is free.
        _, lingering = psutil.wait_procs(tree, timeout=GRACE)
        if lingering and os.name != "nt":
            os.killpg(0, signal.SIGKILL)
        kill(lingering)
        sys.exit(0)

    # Handlers before the server starts: a SIGINT ignored by whoever started us would stay ignored in the
    # server, whereas a handled one reverts to the default across exec, so the server's Ctrl-C works again.
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    env = {**os.environ, RELOADER_ENV: "true"} if reloader else None
    child = subprocess.Popen(cmd, env=env)
    watched = watch(int(parent))
    while True:
        while child.poll() is None:
            if watched is None or not parent_alive(watched):
                stop()
            time.sleep(POLL)
        if not (reloader and child.returncode == RESTART):
            return child.returncode
        child = subprocess.Popen(cmd, env=env)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
