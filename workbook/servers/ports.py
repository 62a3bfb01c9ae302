"""Ports: is one free, pick a free one, and which workbook server holds one (from the runner's state files)."""

from __future__ import annotations

import json
import random
import socket
from pathlib import Path

from ..errors import WorkbookError
from ..state import STATE_DIR
from .listen import is_busy, listen_problem, try_bind


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


def pid_alive(pid: int) -> bool:
    import psutil

    return pid > 0 and psutil.pid_exists(pid)


def state_file(port: int) -> Path:
    """The file that names the workbook process listening on `port` while it runs."""
    return STATE_DIR / "run" / f"{port}.json"


def who_holds(port: int) -> str | None:
    """Name the workbook server on `port`, if the runner started one that still runs."""
    try:
        state = json.loads(state_file(port).read_text())
    except (OSError, ValueError):
        return None
    return state.get("label") if pid_alive(state.get("pid", -1)) else None


def busy_message(port: int, label: str, retry: str | None = None) -> str:
    """Say in one line that `port` is taken, by what if we know, and how to carry on."""
    holder = who_holds(port)
    why = f"{holder} is still running there" if holder else "is another step or server still running?"
    retry = retry or f"PORT={port + 1} make {label} run"
    return f"port {port} is busy ({why}): stop it, or run {retry}"
