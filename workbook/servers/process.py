"""The guarded process: every server the runner starts (runserver, daphne, uvicorn, https, Redis) is one.

It runs under workbook.servers.guard in a process group of its own, writes its output to a log file and its
name to a state file, answers `start()` only once it is ready (polled under a deadline), and `stop()` ends the
whole group: a Ctrl-C first, SIGKILL for what outlives the grace period.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from ..environment.pythonpath import importable
from ..errors import WorkbookError, summarize_failure
from ..registry import ROOT
from ..state import TIMEOUT, shown
from .guard import GRACE
from .ports import busy_message, port_is_free, state_file


class GuardedProcess:
    """One process under the guard, listening on host:port: `with SomeProcess(…) as process: …`."""

    how = "process"  # what the state file says it is
    appends_log = False  # a log kept across runs (Redis) is appended to, not rewritten
    reloads = False  # the guard restarts it when it exits with 3, as runserver's own outer process would

    def __init__(self, *, host: str, port: int, label: str, log_path: Path):
        self.host, self.port, self.label, self.log_path = host, port, label, log_path
        self.process: subprocess.Popen | None = None

    # --- what a kind of process says ---------------------------------------
    def command(self) -> list[str]:
        """Return the command line to run under the guard."""
        raise NotImplementedError

    def environment(self) -> dict[str, str]:
        """Return what to add to this process's environment."""
        return {}

    @property
    def cwd(self) -> Path | None:
        return None

    def answers(self) -> bool:
        """Tell whether the process is ready (one poll)."""
        raise NotImplementedError

    def busy(self) -> str:
        return busy_message(self.port, self.label)

    def exited(self) -> str:
        return f"{self.label} did not start: {summarize_failure(self.log_text())} (full output: {shown(self.log_path)})"

    def silent(self, timeout: float) -> str:
        return (f"{self.label} did not answer on port {self.port} within {timeout:.0f} s "
                f"(output: {shown(self.log_path)})")

    # --- life cycle ----------------------------------------------------------
    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, timeout: float = TIMEOUT):
        """Start the process under the guard and return once it is ready; stop it if it never is."""
        if self.running:
            return self
        if not port_is_free(self.port, self.host):
            raise WorkbookError(self.busy())
        self.process = spawn_guarded(self.command(), self.log_path, cwd=self.cwd, env=self.environment(),
                                     append=self.appends_log, reloader=self.reloads)
        self._record()
        try:
            self.wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def wait_ready(self, timeout: float = TIMEOUT) -> None:
        """Poll until the process is ready, it exits, or the deadline passes."""
        deadline = time.monotonic() + timeout
        while True:
            if not self.running:
                raise WorkbookError(self.exited())
            if self.answers():
                return
            if time.monotonic() > deadline:
                raise WorkbookError(self.silent(timeout))
            time.sleep(0.05)

    def stop(self, timeout: float = GRACE) -> None:
        """Stop the process and everything it spawned: Ctrl-C, then SIGKILL for what outlives `timeout`."""
        process, self.process = self.process, None
        if process is not None:
            stop_guarded(process, timeout)
        state = state_file(self.port)
        try:
            if json.loads(state.read_text()).get("pid") == getattr(process, "pid", None):
                state.unlink()
        except (OSError, ValueError):
            pass

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # --- output --------------------------------------------------------------
    def log_text(self) -> str:
        """Return everything the process has printed so far."""
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""

    def wait_for_log(self, pattern: str, timeout: float = TIMEOUT, after: int = 0) -> re.Match:
        """Wait until the output (from offset `after`) matches a regex; return the match."""
        deadline = time.monotonic() + timeout
        regex = re.compile(pattern, re.MULTILINE | re.DOTALL)
        while True:
            text = self.log_text()
            match = regex.search(text, after)
            if match:
                return match
            if time.monotonic() > deadline:
                # The log file may be gone by the time someone reads the error (a CI machine): quote its end.
                last = " | ".join(line.strip() for line in text[after:].splitlines()[-3:] if line.strip())
                raise WorkbookError(f"{self.label} never printed {pattern!r} ({shown(self.log_path)}; "
                                    f"its last lines: {last or 'none'})")
            time.sleep(0.05)

    def _record(self) -> None:
        state = state_file(self.port)
        state.parent.mkdir(parents=True, exist_ok=True)
        state.write_text(json.dumps({"label": self.label, "pid": self.pid, "how": self.how}))


def spawn_guarded(cmd: list[str], log_path: Path, cwd: Path | None = None, env: dict | None = None,
                  append: bool = False, reloader: bool = False) -> subprocess.Popen:
    """Start `cmd` under workbook.servers.guard, in a process group of its own, its output going to `log_path`.

    reloader=True: `cmd` is `manage.py runserver` with its autoreloader, and the guard is its outer process.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    env = importable({**os.environ, **(env or {})}, ROOT)
    guard = [sys.executable, "-m", "workbook.servers.guard", str(os.getpid()), *(["--reloader"] if reloader else []),
             "--", *cmd]
    group = {"creationflags": subprocess.CREATE_NEW_PROCESS_GROUP} if os.name == "nt" else {"start_new_session": True}
    with open(log_path, "ab" if append else "wb") as log:
        return subprocess.Popen(guard, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, **group)


def interrupt_guard(pid: int) -> None:
    """Ask a guard to stop its server: it hands a single Ctrl-C to the server's group, as a terminal would."""
    if os.name == "nt":
        subprocess.run(["taskkill", "/T", "/F", "/PID", str(pid)], capture_output=True)
        return
    try:
        os.kill(pid, signal.SIGINT)
    except ProcessLookupError:
        pass


def stop_guarded(process: subprocess.Popen, timeout: float = GRACE) -> None:
    """Stop a process started by spawn_guarded and everything it spawned; SIGKILL what outlives `timeout`."""
    if process.poll() is None:
        interrupt_guard(process.pid)
        try:
            # The guard kills what outlives its own grace period, then exits: give it that long and a second.
            process.wait(max(timeout, GRACE) + 1)
        except subprocess.TimeoutExpired:
            kill_group(process.pid)
            process.wait(timeout)
    if os.name != "nt":
        # A server's reloader child may outlive the guard by a moment; make sure the group is gone.
        deadline = time.monotonic() + timeout
        while group_alive(process.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if group_alive(process.pid):
            kill_group(process.pid)


def kill_group(pgid: int) -> None:
    if os.name == "nt":
        return
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def group_alive(pgid: int) -> bool:
    """Tell whether any process of group `pgid` is still alive."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
