"""Start a project's server the way a learner would (runserver, daphne or uvicorn), wait until it answers, stop it."""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

from ..environment.venv import in_venv, venv_python
from ..errors import WorkbookError
from ..project import asgi_target
from ..registry import Step
from ..state import STATE_DIR, TIMEOUT, shown
from .listen import connect_host
from .ports import free_port, port_is_free
from .process import GuardedProcess

HOWS = ("runserver", "daphne", "uvicorn")


def default_host() -> str:
    return os.environ.get("HOST") or "127.0.0.1"


class Server(GuardedProcess):
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
            self.project, label = project.path, label or project.id
        else:
            self.project = Path(project).resolve()
            label = label or self.project.name
        self.how, self.reload, self.extra_env = how, reload, dict(env or {})
        # Print every websocket message the application receives and sends (workbook/servers/trace.py).
        self.trace = trace
        host = host or default_host()
        # A port we picked ourselves may be taken by someone else before the server binds it: then pick another.
        self._own_port_choice = port is None and log_path is None
        port = port or free_port(host)
        super().__init__(host=host, port=port, label=label,
                         log_path=log_path or STATE_DIR / "logs" / f"{label}-{how}-{port}.log")

    @property
    def reloads(self) -> bool:
        return self.how == "runserver" and self.reload

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

    # --- what the guarded process runs ---------------------------------------
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

    @property
    def cwd(self) -> Path:
        return self.project

    def environment(self) -> dict[str, str]:
        env = {"PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": "1", **self.extra_env}
        if self.trace:
            from .trace import trace_env

            env.update(trace_env(self.project, self.how, self.extra_env))
        return env

    def answers(self) -> bool:
        # A bare TCP connect: it proves the server listens without adding a request to its log.
        try:
            with socket.create_connection((connect_host(self.host), self.port), timeout=1):
                return True
        except OSError:
            return False

    def silent(self, timeout: float) -> str:
        return (f"{self.label} did not answer on {self.http_url} within {timeout:.0f} s "
                f"(output: {shown(self.log_path)}); set WORKBOOK_TIMEOUT to wait longer")

    # --- life cycle ----------------------------------------------------------
    def prepare(self) -> None:
        """Check the project is one and migrate its database if it needs it, before the first start."""
        if not (self.project / "manage.py").exists():
            raise WorkbookError(f"{self.project} has no manage.py: is it a Django project directory?")
        from .migrate import migrate_if_needed

        migrate_if_needed(self)

    def start(self, timeout: float = TIMEOUT) -> Server:
        """Start the server and return once it answers HTTP."""
        if self.running:
            return self
        self.prepare()
        for _ in range(3):
            try:
                return super().start(timeout)
            except WorkbookError:
                taken = not port_is_free(self.port, self.host) or "Address already in use" in self.log_text()
                if not (self._own_port_choice and taken):
                    raise
                self.port = free_port(self.host)
                self.log_path = STATE_DIR / "logs" / f"{self.label}-{self.how}-{self.port}.log"
        return super().start(timeout)

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<Server {self.label} via {self.how} on {self.http_url} ({state})>"


def start(project: Step | Path | str, **options) -> Server:
    """Start a server for a step or project directory and return it once it answers."""
    return Server(project, **options).start()
