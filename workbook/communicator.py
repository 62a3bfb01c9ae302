"""Drive a project's ChatConsumer in-process with channels' WebsocketCommunicator.

Every step has the same module names (`mychannels`, `chat`), so each drive runs in a fresh interpreter
inside the project directory: `drive(step, ["hello"])` returns what happened, as a dict, and
`run_code(step, code)` runs a notebook cell's code there (top-level `await` allowed), returning what it printed.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import io
import json
import os
import subprocess
import sys
from pathlib import Path

from .errors import WorkbookError
from .registry import ROOT, Step
from .state import TIMEOUT


def drive(project: Step | Path, messages: list[str] = (), path: str = "/ws/chat/") -> dict:
    """Connect to the consumer, send each text frame, disconnect; report replies and printed output."""
    directory = project.path if isinstance(project, Step) else Path(project)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(directory), str(ROOT)])}
    args = [sys.executable, "-m", "workbook.communicator", path, *messages]
    result = subprocess.run(args, cwd=directory, env=env, capture_output=True, text=True, timeout=TIMEOUT * 2)
    lines = result.stdout.strip().splitlines()
    if result.returncode != 0 or not lines:
        detail = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise WorkbookError(f"could not drive the consumer in {directory.name}: {detail}")
    return json.loads(lines[-1])


def run_code(project: Step | Path, code: str) -> subprocess.CompletedProcess:
    """Run `code` in a fresh interpreter inside the project, Django set up, top-level await allowed."""
    directory = project.path if isinstance(project, Step) else Path(project)
    path = os.pathsep.join([str(directory), str(ROOT)])
    env = {**os.environ, "PYTHONPATH": path, "PYTHONUNBUFFERED": "1", "PYTHONIOENCODING": "utf-8"}
    args = [sys.executable, "-m", "workbook.communicator", "--code"]
    return subprocess.run(args, input=code, cwd=directory, env=env, capture_output=True, encoding="utf-8",
                          errors="replace", timeout=TIMEOUT * 2)


def _run_code(code: str) -> None:
    import ast

    # Compiled as Jupyter compiles a cell, so the code reads the same in the notebook and here.
    compiled = compile(code, "<cell>", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    result = eval(compiled, {"__name__": "__main__"})
    if asyncio.iscoroutine(result):
        asyncio.run(result)


async def _drive(path: str, messages: list[str]) -> dict:
    from channels.testing import WebsocketCommunicator
    from chat.consumers import ChatConsumer

    application = ChatConsumer.as_asgi()
    if importlib.util.find_spec("chat.routing") is not None:
        # From step 04 on, route as the server does: consumers from step 06 read the room from url_route.
        from channels.routing import URLRouter
        from chat.routing import websocket_urlpatterns

        application = URLRouter(websocket_urlpatterns)
    printed = io.StringIO()
    report: dict = {"connected": False, "replies": [], "error": None}
    # No socket here: these headers are made up, as a page on localhost would send them (STEP 03 says so).
    communicator = WebsocketCommunicator(
        application, path, headers=[(b"host", b"localhost"), (b"origin", b"http://localhost")]
    )
    with contextlib.redirect_stdout(printed):
        try:
            connected, _ = await communicator.connect(timeout=TIMEOUT)
            report["connected"] = connected
            for text in messages:
                await communicator.send_to(text_data=text)
                report["replies"].append(await communicator.receive_from(timeout=TIMEOUT))
        except Exception as exc:  # the consumer raised: report it as the learner would see it
            report["error"] = f"{type(exc).__name__}: {exc}"
        finally:
            with contextlib.suppress(Exception):
                await communicator.disconnect()
    report["printed"] = printed.getvalue()
    return report


def _main(argv: list[str]) -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mychannels.settings")
    import django

    django.setup()
    if argv[:1] == ["--code"]:
        _run_code(sys.stdin.read())
        return 0
    report = asyncio.run(_drive(argv[0], argv[1:]))
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
