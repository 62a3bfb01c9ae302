"""What the pitfalls notebook calls: serve a broken variant, run the doctor on it, then put the fix in.

Servers listen on free ports and stop with the kernel (atexit, and the guard if the kernel is killed).
"""

from __future__ import annotations

import atexit
import shutil
from pathlib import Path

from ..doctor.pitfalls import describe, get_pitfall, load_pitfalls, materialise
from ..errors import WorkbookError
from ..servers.server import Server
from .kernel import record

_running: list[Server] = []
_projects: dict[str, Path] = {}  # slug -> its broken copy, made once per kernel


def table():
    """Show every pitfall as a Markdown table: slug, step, and the first line the learner sees."""
    rows = ["| pitfall | step | what you see |", "|---|---|---|"]
    for pitfall in load_pitfalls():
        first = pitfall.symptom.splitlines()[0].replace("|", "\\|")
        rows.append(f"| `{pitfall.slug}` | {pitfall.step} | `{first}` |")
    return _markdown("\n".join(rows))


def show(slug: str):
    """Print a pitfall's symptom, cause and fix, and return its diff against the step as HTML."""
    from ..diffs import as_html

    pitfall = get_pitfall(slug)
    print(describe(pitfall))
    project = materialise(pitfall)
    try:
        return as_html(pitfall.base.path, project)
    finally:
        shutil.rmtree(project.parent, ignore_errors=True)


def serve(slug: str, how: str | None = None, _state: str = "broken") -> Server | None:
    """Serve a pitfall's broken project on a free port; print why and return None if it does not start."""
    pitfall = get_pitfall(slug)
    if slug not in _projects:
        _projects[slug] = materialise(pitfall)
    how = how or pitfall.server
    env = pitfall.env if _state == "broken" else {}
    if how == "daphne-https":
        from ..servers.https import HttpsServer

        server = HttpsServer(_projects[slug], label=slug, env=env)
    else:
        server = Server(_projects[slug], how=how, label=slug, env=env)
    try:
        server.start()
    except WorkbookError as problem:
        print(f"{slug} via {how}: {problem}")
        return None
    _running.append(server)
    record(server, slug)
    print(f"{slug}: the {_state} step {pitfall.step} is up on {server.http_url} ({how}); it stops with the kernel.")
    return server


def project(slug: str) -> Path:
    """Return the directory of a pitfall's broken copy (made on first use)."""
    if slug not in _projects:
        _projects[slug] = materialise(slug)
    return _projects[slug]


def fix(slug: str, how: str | None = None) -> Server | None:
    """Stop the pitfall's servers, put the step's own files back over the broken ones, and serve it again."""
    pitfall = get_pitfall(slug)
    for server in [s for s in _running if s.label == slug]:
        stop(server)
    for name in pitfall.overlay_files():
        shutil.copyfile(pitfall.base.path / name, project(slug) / name)
        print(f"restored {name} from steps/{pitfall.base.id}/")
    return serve(slug, how=how, _state="fixed")


def doctor(*args: str) -> None:
    """Run `python -m workbook doctor …` as a learner would in a terminal and print its report and exit code."""
    import argparse
    import contextlib
    import io
    import threading

    from ..doctor import command

    shown = [str(arg) for arg in args]
    print("$ python -m workbook doctor " + " ".join(shown))
    parser = argparse.ArgumentParser(prog="python -m workbook")
    command.add_commands(parser.add_subparsers())
    parsed = parser.parse_args(["doctor", *shown])
    # The command itself, in this process (the project still loads in processes of its own), on a thread of its
    # own: the kernel's event loop is running, and a probe runs one of its own. Printed as a terminal shows it.
    out, result = io.StringIO(), {}

    def run() -> None:
        try:
            result["code"] = parsed.func(parsed)
        except WorkbookError as problem:
            print(f"workbook: {problem}", file=out)
            result["code"] = 1

    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        thread = threading.Thread(target=run, name="doctor")
        thread.start()
        thread.join()
    print(out.getvalue().rstrip())
    print(f"(exit code {result.get('code', 1)})")


def stop(server: Server | None = None) -> None:
    """Stop one server, or every server this kernel started (together: each stop mostly waits)."""
    from concurrent.futures import ThreadPoolExecutor

    servers = [server] if server is not None else list(_running)
    with ThreadPoolExecutor() as pool:
        list(pool.map(lambda one: one.stop(), servers))
    for one in servers:
        if one in _running:
            _running.remove(one)


@atexit.register
def _clean_up() -> None:
    # One by one: at exit, the interpreter no longer starts threads for a pool.
    for server in list(_running):
        server.stop()
    _running.clear()
    for directory in _projects.values():
        shutil.rmtree(directory.parent, ignore_errors=True)


def _markdown(text: str):
    try:
        from IPython.display import Markdown
    except ImportError:
        return text
    return Markdown(text)
