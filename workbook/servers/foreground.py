"""The foreground run of `run`, `pitfall run` and `redis`: the server's log on the terminal until Ctrl-C or a kill."""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from ..errors import WorkbookError
from .process import GuardedProcess
from .stopping import stop_on_signals


class LogFollower:
    """Copy a growing log file to the terminal from a thread, and on demand with catch_up()."""

    def __init__(self, path: Path, from_end: bool = False, out=None):
        self.path, self.out = path, out or sys.stdout
        self.offset = path.stat().st_size if from_end and path.exists() else 0
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._copy, daemon=True)

    def catch_up(self) -> None:
        """Copy everything written so far; the lock keeps the thread from copying a piece twice or out of order."""
        with self._lock:
            try:
                with open(self.path, "rb") as log:
                    if os.fstat(log.fileno()).st_size < self.offset:
                        self.offset = 0  # written anew since the last read: a new run's log
                    log.seek(self.offset)
                    chunk = log.read()
            except OSError:
                return
            if chunk:
                self.offset += len(chunk)
                self.out.write(chunk.decode("utf-8", errors="replace"))
                self.out.flush()

    def _copy(self) -> None:
        while not self._done.wait(0.1):
            self.catch_up()

    def __enter__(self) -> LogFollower:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._done.set()
        self._thread.join()
        self.catch_up()


def foreground(process: GuardedProcess, up: Callable[[], Iterable[str]], stopped: str | None,
               died: Callable[[], str] | None) -> int:
    """Run `process` until Ctrl-C or SIGTERM, its log on the terminal, `up()`'s lines once it is ready.

    `stopped` is printed after a clean stop; when the process ends by itself, `died()` is the error to raise
    (None: return 0 quietly).
    """
    # Ctrl-C in the terminal and a plain `kill` both end the run the same clean way.
    stop_on_signals()
    if not process.appends_log:
        # The start writes this log afresh, but only once it spawns (after a migrate, say): until then the follower
        # would copy the last run's lines on the same port to the terminal as if they were this run's.
        with contextlib.suppress(OSError):  # Windows: still open by a server that is still running; start says so
            process.log_path.unlink(missing_ok=True)
    follower = LogFollower(process.log_path, from_end=process.appends_log)
    try:
        with follower:
            process.start()
            # What the server printed while starting comes before the line saying it is up.
            follower.catch_up()
            print(*up(), sep="\n", flush=True)
            while process.running:
                time.sleep(0.2)
    except KeyboardInterrupt:
        process.stop()
        follower.catch_up()
        if stopped:
            print(f"\n{stopped}", flush=True)
        return 0
    finally:
        process.stop()
    if died is None:
        return 0
    raise WorkbookError(died())
