"""Start a project's server the way a learner would, wait until it answers, and stop it cleanly."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from .errors import WorkbookError, summarize_failure
from .listen import connect_host, is_busy, listen_problem, try_bind
from .project import asgi_target
from .registry import ROOT, Step
from .state import STATE_DIR, TIMEOUT, shown
from .venv import in_venv, venv_python

HOWS = ("runserver", "daphne", "uvicorn")


def default_host() -> str:
    return os.environ.get("HOST") or "127.0.0.1"


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """Tell whether a server could listen on host:port right now; raise WorkbookError if it never could there."""
    error = try_bind(host, port)
    # Only a listener already there makes the port busy; a wrong host or a reserved port is another story.
    if error is not None and not is_busy(error):
        raise WorkbookError(listen_problem(error, host, port))
    return error is None


def free_port(host: str = "127.0.0.1") -> int:
    """Return a port nothing listens on, below the ephemeral range that client sockets draw from."""
    # A port the OS hands out for port 0 comes from the ephemeral range, where a client socket may take it before
    # the server binds it; ports below that range are only ever taken on purpose.
    for port in random.sample(range(20000, 32700), 40):
        if port_is_free(port, host):
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _pid_alive(pid: int) -> bool:
    import psutil

    return pid > 0 and psutil.pid_exists(pid)


def _state_file(port: int) -> Path:
    return STATE_DIR / "run" / f"{port}.json"


def who_holds(port: int) -> str | None:
    """Name the workbook server on `port`, if the runner started one that still runs."""
    try:
        state = json.loads(_state_file(port).read_text())
    except (OSError, ValueError):
        return None
    return state.get("label") if _pid_alive(state.get("pid", -1)) else None


def busy_message(port: int, label: str, retry: str | None = None) -> str:
    """Say in one line that `port` is taken, by what if we know, and how to carry on."""
    holder = who_holds(port)
    why = f"{holder} is still running there" if holder else "is another step or server still running?"
    retry = retry or f"PORT={port + 1} make {label} run"
    return f"port {port} is busy ({why}): stop it, or run {retry}"


class Server:
    """One server process for a project directory: `with Server(step) as server: …`."""

    def __init__(
        self,
        project: Step | Path | str,
        *,
        how: str = "runserver",
        host: str | None = None,
        port: int | None = None,
        reload: bool = False,
        env: dict[str, str] | None = None,
        label: str | None = None,
        log_path: Path | None = None,
        trace: bool = False,
    ):
        if how not in HOWS:
            raise WorkbookError(f"unknown server {how!r}: use one of {', '.join(HOWS)}")
        if isinstance(project, Step):
            self.project, self.label = project.path, label or project.id
        else:
            self.project = Path(project).resolve()
            self.label = label or self.project.name
        self.how, self.reload, self.extra_env = how, reload, dict(env or {})
        # Print every websocket message the application receives and sends (workbook/trace.py).
        self.trace = trace
        self.host = host or default_host()
        self.port = port or free_port(self.host)
        # A port we picked ourselves may be taken by someone else before the server binds it: then pick another.
        self._own_port_choice = port is None and log_path is None
        self.log_path = log_path or STATE_DIR / "logs" / f"{self.label}-{how}-{self.port}.log"
        self.process: subprocess.Popen | None = None

    # --- addresses -----------------------------------------------------------
    @property
    def http_url(self) -> str:
        return f"http://{self._netloc}/"

    def ws_url(self, path: str = "/ws/chat/") -> str:
        return f"ws://{self._netloc}{path}"

    @property
    def _netloc(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    # --- life cycle ----------------------------------------------------------
    def command(self) -> list[str]:
        """Return the command line that serves the project."""
        python = sys.executable if in_venv() or not venv_python().exists() else str(venv_python())
        if self.how == "runserver":
            cmd = [python, "manage.py", "runserver", f"{self._netloc}"]
            return cmd if self.reload else [*cmd, "--noreload"]
        from .trace import TARGET

        target = TARGET if self.trace else asgi_target(self.project)
        if self.how == "daphne":
            # Daphne drops a handshake the application has not accepted within 5 s; in a surge of logins they queue
            # behind each other's session lookups for longer (docs/benchmarks.md), so allow 30 s as FINAL.md does.
            return [python, "-m", "daphne", "--websocket_connect_timeout", "30", "-b", self.host, "-p", str(self.port),
                    target]
        return [python, "-m", "uvicorn", "--host", self.host, "--port", str(self.port), target]

    def start(self, timeout: float = TIMEOUT) -> Server:
        """Start the server and return once it answers HTTP."""
        if self.running:
            return self
        if not (self.project / "manage.py").exists():
            raise WorkbookError(f"{self.project} has no manage.py: is it a Django project directory?")
        from .migrate import migrate_if_needed

        migrate_if_needed(self)
        for _ in range(3):
            try:
                return self._start_once(timeout)
            except WorkbookError:
                taken = not port_is_free(self.port, self.host) or "Address already in use" in self.log_text()
                if not (self._own_port_choice and taken):
                    raise
                self.port = free_port(self.host)
                self.log_path = STATE_DIR / "logs" / f"{self.label}-{self.how}-{self.port}.log"
        return self._start_once(timeout)

    def _start_once(self, timeout: float) -> Server:
        if not port_is_free(self.port, self.host):
            raise WorkbookError(busy_message(self.port, self.label))
        env = {"PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": "1", **self.extra_env}
        if self.trace:
            from .trace import trace_env

            env.update(trace_env(self.project, self.how, self.extra_env))
        self.process = spawn_guarded(self.command(), self.log_path, cwd=self.project, env=env)
        self._record()
        try:
            self.wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def wait_ready(self, timeout: float = TIMEOUT) -> None:
        """Poll until the server accepts connections, it exits, or the deadline passes."""
        deadline = time.monotonic() + timeout
        while True:
            if not self.running:
                raise WorkbookError(
                    f"{self.label} did not start: {summarize_failure(self.log_text())} "
                    f"(full output: {self._shown(self.log_path)})"
                )
            # A bare TCP connect: it proves the server listens without adding a request to its log.
            try:
                with socket.create_connection((connect_host(self.host), self.port), timeout=1):
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise WorkbookError(
                    f"{self.label} did not answer on {self.http_url} within {timeout:.0f} s "
                    f"(output: {self._shown(self.log_path)}); set WORKBOOK_TIMEOUT to wait longer"
                )
            time.sleep(0.05)

    def stop(self, timeout: float = 10) -> None:
        """Stop the server and everything it spawned; wait until the port is released."""
        process, self.process = self.process, None
        if process is not None:
            stop_guarded(process, timeout)
        _state_file(self.port).unlink(missing_ok=True)

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<Server {self.label} via {self.how} on {self.http_url} ({state})>"

    # --- output --------------------------------------------------------------
    def log_text(self) -> str:
        """Return everything the server has printed so far."""
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""

    def wait_for_log(self, pattern: str, timeout: float = TIMEOUT, after: int = 0) -> re.Match:
        """Wait until the output (from offset `after`) matches a regex; return the match."""
        deadline = time.monotonic() + timeout
        regex = re.compile(pattern, re.MULTILINE | re.DOTALL)
        while True:
            match = regex.search(self.log_text(), after)
            if match:
                return match
            if time.monotonic() > deadline:
                raise WorkbookError(f"{self.label} never printed {pattern!r} ({self._shown(self.log_path)})")
            time.sleep(0.05)

    # --- helpers -------------------------------------------------------------
    def _record(self) -> None:
        state = _state_file(self.port)
        state.parent.mkdir(parents=True, exist_ok=True)
        state.write_text(json.dumps({"label": self.label, "pid": self.pid, "how": self.how}))

    _shown = staticmethod(shown)


def spawn_guarded(cmd: list[str], log_path: Path, cwd: Path | None = None, env: dict | None = None,
                  append: bool = False) -> subprocess.Popen:
    """Start `cmd` under workbook.guard, in a process group of its own, its output going to `log_path`."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **(env or {})}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    guard = [sys.executable, "-m", "workbook.guard", str(os.getpid()), "--", *cmd]
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


def stop_guarded(process: subprocess.Popen, timeout: float = 10) -> None:
    """Stop a process started by spawn_guarded and everything it spawned; SIGKILL what outlives `timeout`."""
    if process.poll() is None:
        interrupt_guard(process.pid)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            _kill_group(process.pid)
            process.wait(timeout)
    if os.name != "nt":
        # A server's reloader child may outlive the guard by a moment; make sure the group is gone.
        deadline = time.monotonic() + timeout
        while group_alive(process.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if group_alive(process.pid):
            _kill_group(process.pid)


def _kill_group(pgid: int) -> None:
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


def start(project: Step | Path | str, **options) -> Server:
    """Start a server for a step or project directory and return it once it answers."""
    return Server(project, **options).start()
