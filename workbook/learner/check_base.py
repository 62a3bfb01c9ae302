"""What the step checks share: a Result per check, the Failed exception, and Run, one project under test.

Run loads the project in a fresh interpreter (`python -m workbook.learner.probe PACKAGE` prints its facts as
JSON; the same files load once per process), starts one real server from it (or talks to one already running), and
drives its consumer in-process, each at most once.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..doctor.hints import from_traceback, hint_for
from ..errors import WorkbookError
from ..project import asgi_target
from ..registry import ROOT
from ..servers.server import Server
from ..state import TIMEOUT
from . import probe

HELLO = json.dumps({"message": "hello"})
AGAIN = json.dumps({"message": "again"})
QUICK = min(TIMEOUT, 10)  # how long to wait for something that normally comes at once


@dataclass(frozen=True)
class Result:
    name: str
    status: str  # "pass", "fail", or "skip": an earlier failure blocks it, or the machine lacks what it needs
    detail: str = ""
    hint: str = ""

    @property
    def passed(self) -> bool:
        return self.status == "pass"


class Failed(Exception):
    """A check failed: what was seen, and the one hint that fits it."""

    def __init__(self, detail: str, hint: str = ""):
        super().__init__(detail)
        self.detail, self.hint = detail, hint


class Run:
    """What one project's checks share: its facts, one server, one in-process drive."""

    def __init__(self, project: Path, label: str, server: Server | None = None):
        self.project, self.label = Path(project).resolve(), label
        self.package = asgi_target(self.project).split(".", 1)[0]
        self._facts: dict | None = None
        # A server handed in (the stage tests share theirs) is the caller's to stop.
        self._server: Server | None = server
        self._owns_server = server is None
        self._booting: threading.Thread | None = None
        self._boot_error: Exception | None = None
        self._drive: dict | None = None
        self._page: tuple[int, str] | None = None
        self.on_close: list[Callable[[], None]] = []  # close() calls each: checks stop their background work there

    def _env(self) -> dict[str, str]:
        path = os.pathsep.join([str(self.project), str(ROOT)])
        return {**os.environ, "PYTHONPATH": path, "PYTHONDONTWRITEBYTECODE": "1"}

    def facts(self) -> dict:
        """Load the settings and the ASGI application in a fresh interpreter; report what they hold."""
        if self._facts is None:
            result = probe.load(self.project, self.package, self._env())
            if not isinstance(result, dict):
                problem = from_traceback(result.stderr, self.project)
                error = str(problem) if problem else (result.stderr.strip().splitlines() or ["no output"])[-1]
                fallback = f"open {problem.file} at line {problem.line}" if problem and problem.file else ""
                raise Failed(error, hint_for(problem.error if problem else result.stderr, fallback))
            self._facts = result
        return self._facts

    def warm_up(self) -> None:
        """Start the server in the background: it boots while the facts load, both take seconds."""
        if self._owns_server and self._booting is None:
            self._booting = threading.Thread(target=self._boot, daemon=True)
            self._booting.start()

    def _boot(self) -> None:
        self._server = Server(self.project, how="runserver", label=self.label)
        try:
            self._server.start()
        except Exception as error:  # kept for server(), which reports it in the caller's thread
            self._boot_error = error

    def server(self) -> Server:
        """Start the project's server once, the way `make run` does (or return the one handed in)."""
        if not self._owns_server:
            return self._server
        self.warm_up()
        self._booting.join()
        if self._boot_error is not None:
            log = self._server.log_text()
            problem = from_traceback(log, self.project)
            evidence = problem.error if problem else log
            detail = str(problem) if problem else str(self._boot_error)
            raise Failed(detail, hint_for(evidence, f"read {self._server.log_path}"))
        return self._server

    def drive(self) -> dict:
        """Connect ChatConsumer in-process, send {"message": "hello"} and then "again", disconnect; cache the report."""
        from ..communicator import drive

        if self._drive is None:
            consumer = self.facts().get("consumer")
            if consumer is None:
                raise Failed("chat/consumers.py does not exist", hint_for("No module named 'chat.consumers'"))
            if consumer is False:
                raise Failed("chat/consumers.py defines no ChatConsumer",
                             "name the class ChatConsumer: the routing and the checks import it by that name")
            self._drive = drive(self.project, [HELLO, AGAIN])
        return self._drive

    def page(self) -> tuple[int, str]:
        if self._page is None:
            try:
                with urllib.request.urlopen(self.server().http_url, timeout=TIMEOUT) as response:
                    self._page = response.status, response.read().decode("utf-8", errors="replace")
            except urllib.error.HTTPError as error:
                self._page = error.code, error.read().decode("utf-8", errors="replace")
        return self._page

    # The log line that ends a websocket: runserver's, then the daphne CLI's; or an HTTP answer.
    SETTLED = r"WebSocket DISCONNECT|\"WSDISCONNECT |\" \d{3} \d+"

    def websocket(self, action: Callable, settle: str = SETTLED) -> tuple[object, str]:
        """Run a client coroutine against the server; return its result (or exception) and the log it caused."""
        server = self.server()
        before = len(server.log_text())
        origin = server.http_url.rstrip("/")
        try:
            outcome = asyncio.run(action(server, origin))
        except Exception as error:  # the client's failure is evidence, not a crash of the checker
            outcome = error
        try:
            server.wait_for_log(settle, timeout=QUICK, after=before)
        except WorkbookError:
            pass
        return outcome, server.log_text()[before:]

    def close(self) -> None:
        for stop in self.on_close:
            stop()
        if self._booting is not None:
            self._booting.join()
        if self._server is not None and self._owns_server:
            self._server.stop()


CheckFunc = Callable[[Run], None]


# The servers a check talks to: the stage tests run it against each (none: it works without a server).
SERVED = ("runserver", "daphne")
RUNSERVER = ("runserver",)
IN_PROCESS = ()


def check(name: str, served: tuple[str, ...] = SERVED) -> Callable[[CheckFunc], CheckFunc]:
    """Name a check (the name is the line the learner reads) and the kinds of server it talks to."""
    def register(func: CheckFunc) -> CheckFunc:
        func.check_name, func.served = name, served
        return func
    return register


class Unavailable(Exception):
    """A check cannot run (no redis-server, or a failure above decides it): it is reported as not run, with why."""
