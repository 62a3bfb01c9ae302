"""Run a server and take it down with its parent: `python -m workbook.guard PARENT_PID -- CMD…`.

The runner starts every server through this guard in a process group of its own. If the process that
asked for the server dies (a crashed test, a restarted Jupyter kernel), the guard stops the server, so
nothing is left listening.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

POLL = 0.25


def parent_alive(pid: int) -> bool:
    """Tell whether process `pid` still runs."""
    if os.name == "nt":
        import ctypes

        handle = ctypes.windll.kernel32.OpenProcess(0x1000, False, pid)  # QUERY_LIMITED_INFORMATION
        if not handle:
            return False
        code = ctypes.c_ulong()
        ctypes.windll.kernel32.GetExitCodeProcess(handle, ctypes.byref(code))
        ctypes.windll.kernel32.CloseHandle(handle)
        return code.value == 259  # STILL_ACTIVE
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return os.getppid() == pid


def main(argv: list[str]) -> int:
    parent, sep, *cmd = argv
    if sep != "--" or not cmd:
        print("usage: python -m workbook.guard PARENT_PID -- COMMAND…", file=sys.stderr)
        return 2
    child: subprocess.Popen | None = None

    def stop(signum=signal.SIGINT, _frame=None):
        if child is None:
            sys.exit(0)
        if os.name == "nt":
            subprocess.run(["taskkill", "/T", "/F", "/PID", str(child.pid)], capture_output=True)
        else:
            # Pass the signal on once to everything the server spawned (runserver's reloader child shares our
            # group): SIGINT is a Ctrl-C, which every server here handles quietly.
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, signal.SIG_IGN)
            os.killpg(0, signum)
        try:
            child.wait(5)
        except subprocess.TimeoutExpired:
            if os.name != "nt":
                os.killpg(0, signal.SIGKILL)
        sys.exit(0)

    # Handlers before the server starts: a SIGINT ignored by whoever started us would stay ignored in the
    # server, whereas a handled one reverts to the default across exec, so the server's Ctrl-C works again.
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    child = subprocess.Popen(cmd)
    while child.poll() is None:
        if not parent_alive(int(parent)):
            stop()
        time.sleep(POLL)
    return child.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
