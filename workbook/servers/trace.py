"""Trace every ASGI message of every websocket connection: the runner serves a step through this wrapper.

`workbook.servers.trace:application` (or `workbook.servers.trace.application` as ASGI_APPLICATION) is the project's own
application, wrapped: each message the application receives or sends is printed as one line, tagged with its
connection, so a learner sees the events behind each consumer method. The step's files are not touched: the
runner points the server here and names the real application in the environment (see `trace_env`).

    ws#1 → app  websocket.connect     (path /ws/chat/)
    ws#1 app →  websocket.accept
    ws#1 → app  websocket.receive     text='{"message": "hi"}'
    ws#1 app →  websocket.send        text='{"message": "hi"}'
    ws#1 app ✘  KeyError              'message' (daphne closes the socket with 1011)
    ws#1 → app  websocket.disconnect  code=1000

`parse(log_text)` reads those lines back as `Event`s, for notebooks and tests.
"""

from __future__ import annotations

import functools
import itertools
import os
import re
import sys
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path

# The application the wrapper serves, "package.module:attribute"; unset, it is the project's ASGI_APPLICATION.
TRACED_ENV = "WORKBOOK_TRACED"
# The server the runner started (runserver, daphne, uvicorn): it decides what follows an exception.
SERVER_ENV = "WORKBOOK_TRACE_SERVER"
TARGET = "workbook.servers.trace:application"
LONGEST_TEXT = 48

_ARROWS = {"received": ("→ app", "-> app"), "sent": ("app →", "app ->"), "raised": ("app ✘", "app x")}
# Searched for, not matched at the start: a consumer's print() from another thread may have written the first part of
# its line ("a client disconnected, close code") just before the trace line, the rest of it just after.
_LINE = re.compile(r"(?P<tag>ws#\d+) (?P<arrow>→ app|-> app|app →|app ->|app ✘|app x)  (?P<type>\S+) *(?P<detail>.*)$")


@dataclass(frozen=True)
class Event:
    """One traced line: its connection (`ws#1`), direction (received, sent or raised), type and detail.

    For a raised event, `type` is the exception's class and `detail` its message.
    """

    connection: str
    direction: str
    type: str
    detail: str = ""

    def __str__(self) -> str:
        return format_line(self.connection, self.direction, self.type, self.detail)


def parse(log_text: str) -> list[Event]:
    """Read the trace lines out of a server's output, in order, ignoring every other line."""
    events = []
    for line in log_text.splitlines():
        match = _LINE.search(line.rstrip())
        if match:
            direction = next(way for way, arrows in _ARROWS.items() if match["arrow"] in arrows)
            events.append(Event(match["tag"], direction, match["type"], match["detail"]))
    return events


def shorten(text: str, longest: int = LONGEST_TEXT) -> str:
    """Show a frame's text as Python would, cut after `longest` characters with the full length said."""
    if len(text) <= longest:
        return repr(text)
    return f"{text[:longest]!r}… ({len(text)} characters)"


def describe(message: dict) -> str:
    """Say what a message carries besides its type, in a few words."""
    kind = message.get("type", "")
    if kind in ("websocket.receive", "websocket.send"):
        if message.get("bytes") is not None:
            return f"bytes=<{len(message['bytes'])} bytes>"
        return f"text={shorten(message.get('text') or '')}"
    if kind in ("websocket.disconnect", "websocket.close"):
        code = f"code={message.get('code', 1000)}"
        return f"{code} reason={shorten(message['reason'])}" if message.get("reason") else code
    if kind == "websocket.accept" and message.get("subprotocol"):
        return f"subprotocol={message['subprotocol']!r}"
    return ""


@functools.cache
def _ascii_only() -> bool:
    try:
        "→✘…".encode(sys.stdout.encoding or "ascii")
    except (UnicodeEncodeError, LookupError):
        return True
    return False


def format_line(tag: str, direction: str, kind: str, detail: str = "") -> str:
    """Render one trace line; plain ASCII arrows when the output cannot take Unicode."""
    arrow = _ARROWS[direction][1 if _ascii_only() else 0]
    line = f"{tag} {arrow}  {kind:<20}  {detail}".rstrip()
    return line.replace("…", "...") if _ascii_only() else line


def _emit(line: str) -> None:
    # One write per line, so lines from concurrent connections never interleave mid-line.
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _after_raise(accepted: bool) -> str:
    if os.environ.get(SERVER_ENV, "runserver") not in ("runserver", "daphne"):
        return ""
    return " (daphne closes the socket with 1011)" if accepted else " (daphne answers the handshake with HTTP 500)"


_connections = itertools.count(1)


def traced(app):
    """Wrap an ASGI application so every websocket message it receives or sends is printed as it happens."""

    async def tracing(scope, receive, send):
        if scope.get("type") != "websocket":
            return await app(scope, receive, send)
        tag = f"ws#{next(_connections)}"
        accepted = False

        async def traced_receive():
            message = await receive()
            detail = f"(path {scope.get('path', '')})" if message.get("type") == "websocket.connect" else ""
            _emit(format_line(tag, "received", message.get("type", "?"), detail or describe(message)))
            return message

        async def traced_send(message):
            nonlocal accepted
            kind = message.get("type", "?")
            # A close before the accept refuses the handshake instead (the ASGI spec's rule for every server).
            refusal = kind == "websocket.close" and not accepted
            accepted = accepted or kind == "websocket.accept"
            _emit(format_line(tag, "sent", kind, "before accept: the handshake is refused with HTTP 403"
                              if refusal else describe(message)))
            return await send(message)

        try:
            return await app(scope, traced_receive, traced_send)
        except Exception as error:
            _emit(format_line(tag, "raised", type(error).__name__, f"{error}{_after_raise(accepted)}"))
            raise

    return tracing


def _load(path: str):
    module, _, name = path.partition(":") if ":" in path else path.rpartition(".")
    try:
        return getattr(import_module(module), name)
    except AttributeError as missing:
        # Not an AttributeError: the server would report it as "no `application` in workbook.servers.trace".
        raise ImportError(f"the traced application {path!r} cannot be loaded: {missing}") from missing


def traced_path() -> str:
    """Name the application to trace: WORKBOOK_TRACED, else the project's own ASGI_APPLICATION setting."""
    if os.environ.get(TRACED_ENV):
        return os.environ[TRACED_ENV]
    # Under the settings overlay, ASGI_APPLICATION points here; the project's own module names the real one.
    settings = import_module(os.environ.get("WORKBOOK_SETTINGS") or os.environ["DJANGO_SETTINGS_MODULE"])
    path = getattr(settings, "ASGI_APPLICATION", None)
    if not path or path.replace(":", ".") == TARGET.replace(":", "."):
        from django.core.exceptions import ImproperlyConfigured

        raise ImproperlyConfigured("Cannot find ASGI_APPLICATION setting (the trace wraps the application it names).")
    return path


def trace_env(project: Path, how: str, env: dict[str, str] | None = None) -> dict[str, str]:
    """Return what to add to `env` so that server `how` serves `project` through the trace."""
    from ..project import asgi_target, overlay_env

    if how != "runserver":
        return {TRACED_ENV: asgi_target(project), SERVER_ENV: how}
    additions = {**overlay_env(project, asgi_application=TARGET.replace(":", ".")), SERVER_ENV: how}
    own = (env or {}).get("DJANGO_SETTINGS_MODULE")
    if own and own != additions["DJANGO_SETTINGS_MODULE"]:
        # The run already names its own settings: the overlay goes on top of those.
        additions["WORKBOOK_SETTINGS"] = own
    return additions


def __getattr__(name: str):
    # Loaded on first use, so that importing this module for parse() never starts a Django project.
    if name == "application":
        app = globals()["application"] = traced(_load(traced_path()))
        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
