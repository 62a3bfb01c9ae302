"""What the notebooks call about servers: start a step's server, show what it printed, stop it.

A notebook starts with `from workbook import notebooks as nb`. Servers it starts listen on a free port,
are stopped when the kernel exits (atexit), and when the kernel is killed (the guard in workbook/servers/guard.py).
"""

from __future__ import annotations

import atexit
import importlib.util
import json
import os
import re
import sys
import time
from pathlib import Path

from ..environment.venv import venv_python
from ..errors import WorkbookError
from ..registry import Step, get_step
from ..servers.logs import fold_scopes, fold_tracebacks
from ..servers.ports import port_is_free
from ..servers.server import Server
from ..state import TIMEOUT

# When set, every server a notebook starts is appended here as a JSON line (the tests read it).
RECORD = os.environ.get("WORKBOOK_SERVER_RECORD")

_running: list[tuple[int, Server]] = []  # (step number, server) for each server this kernel started
_shown: dict[Path, int] = {}  # log file -> how much of it output() has printed
_scope_shown: set[Path] = set()  # log files whose first printed scope output() has shown in full


def check_kernel() -> None:
    """Refuse, with what to do, a kernel whose Python lacks the workbook's packages."""
    missing = [name for name in ("websockets", "django", "channels") if importlib.util.find_spec(name) is None]
    if missing:
        raise WorkbookError(
            f"this kernel runs {sys.executable}, which lacks {', '.join(missing)}: choose the project's "
            f"virtualenv ({venv_python()}) as the kernel, or open the notebooks with `make lab`"
        )


def as_step(step: Step | int | str) -> Step:
    return step if isinstance(step, Step) else get_step(step)


# --- servers -----------------------------------------------------------------
def start(
    step: Step | int | str,
    how: str = "runserver",
    show_output: bool = False,
    replace: bool = True,
    env: dict[str, str] | None = None,
    trace: bool = False,
) -> Server:
    """Start a step's server on a free port and return it once it answers.

    Running the cell again replaces the step's server; `replace=False` starts one more beside it.
    Its start-up banner counts as seen by `output()`, unless `show_output` prints it right away.
    `env` adds environment variables for the server (e.g. REDIS_URL); `trace` prints every ASGI event (`events()`).
    """
    step = as_step(step)
    if replace:
        for number, old in list(_running):
            if number == step.number:
                stop(old, quiet=True)
    # Server.start picks another free port itself if someone takes this one before the server binds it.
    server = Server(step, how=how, env=env, trace=trace).start()
    _running.append((step.number, server))
    _shown[server.log_path] = 0 if show_output else len(_settled(server))
    record(server, step.id)
    traced = ", tracing every ASGI event" if trace else ""
    print(f"{step.label} is up on {server.http_url} ({how}{traced}); it stops with this notebook's kernel.")
    if show_output:
        output(server)
    return server


class AppServer(Server):
    """daphne serving a bare ASGI application from a file beside the notebooks: `AppServer("raw_asgi_echo:app")`."""

    def __init__(self, target: str, directory: Path | None = None):
        super().__init__(directory or Path(__file__).resolve().parents[2] / "notebooks",
                         how="daphne", label=target.partition(":")[0])
        self.target = target

    def command(self) -> list[str]:
        return [sys.executable, "-m", "daphne", "-b", self.host, "-p", str(self.port), self.target]

    def prepare(self) -> None:
        """Nothing to check or migrate: not a Django project."""


def serve_app(target: str) -> AppServer:
    """Serve `module:app` from notebooks/ with daphne on a free port; it stops with the kernel."""
    server = AppServer(target).start()
    _running.append((-1, server))
    _shown[server.log_path] = len(_settled(server))
    record(server, server.label)
    print(f"{target} is served by daphne on {server.ws_url('/')}; it stops with this notebook's kernel.")
    return server


def record(server: Server, name: str) -> None:
    """Note a started server in WORKBOOK_SERVER_RECORD, where the notebook tests check it is gone afterwards."""
    if RECORD:
        with open(RECORD, "a", encoding="utf-8") as file:
            entry = {"kernel": os.getpid(), "step": name, "port": server.port, "pid": server.pid}
            file.write(json.dumps(entry) + "\n")


def stop(*servers: Server, quiet: bool = False) -> None:
    """Stop the given servers, or every server this kernel started, at once; check each port is free again."""
    chosen = list(servers) or [running for _, running in _running]
    if not chosen:
        return
    # Imported only now: at interpreter exit, with nothing to stop, its import would fail to register its atexit.
    from concurrent.futures import ThreadPoolExecutor

    # Each stop waits for its process to exit; stopping them side by side costs the slowest, not the sum.
    with ThreadPoolExecutor(len(chosen)) as pool:
        list(pool.map(lambda one: one.stop(), chosen))
    for one in chosen:
        _running[:] = [(number, running) for number, running in _running if running is not one]
        if not quiet:
            state = "free again" if port_is_free(one.port, one.host) else "STILL BUSY: run `make stop`"
            print(f"stopped the server of {one.label}: port {one.port} is {state}.")


atexit.register(stop, quiet=True)


# --- what the server printed ---------------------------------------------------
def _settled(server: Server, quiet_for: float = 0.1) -> str:
    """Return the server's output once it has stopped growing for a moment (or the deadline passed)."""
    deadline = time.monotonic() + TIMEOUT
    text = server.log_text()
    calm_since = time.monotonic()
    while time.monotonic() - calm_since < quiet_for and time.monotonic() < deadline:
        time.sleep(0.03)
        latest = server.log_text()
        if latest != text:
            text, calm_since = latest, time.monotonic()
    return text


def output(server: Server, full: bool = False) -> None:
    """Print what the server printed since the last call, shortened unless `full`.

    Tracebacks keep only the step's own frames; a scope printed again after the first is folded to one line.
    """
    text = _settled(server)
    new = text[_shown.get(server.log_path, 0):]
    _shown[server.log_path] = len(text)
    shown = new
    if not full:
        shown, seen = fold_scopes(fold_tracebacks(new, server.project), server.log_path in _scope_shown)
        if seen:
            _scope_shown.add(server.log_path)
    print(shown.rstrip("\n") if shown.strip() else "(the server printed nothing new)")


def in_step(line: str, cell: str) -> None:
    """`%%in_step 2`: run the cell's code in a fresh Python inside that step, Django set up; print its output.

    The code may use top-level `await`, as a cell does; the kernel itself never imports the step's project.
    """
    from ..communicator import run_code

    step = as_step(line.strip())
    result = run_code(step, cell)
    print(result.stdout.rstrip("\n") or "(the cell printed nothing)")
    if result.returncode != 0:
        # Show the cell's own frames only: the runner's are of no use to the learner.
        lines = result.stderr.rstrip().splitlines()
        start = next((i for i, text in enumerate(lines) if '"<cell>"' in text), 0)
        print("\n".join(lines[:1] + lines[start:]), file=sys.stderr)
        raise WorkbookError(f"the cell's code failed in {step.path.name}: {lines[-1] if lines else 'no output'}")


# The server's own lines (runserver's, then the daphne CLI's), which events() leaves out.
SERVER_LINE = re.compile(r"^(WebSocket [A-Z]+ |HTTP [A-Z]+ |Not Found: |\S+ - - \[|\d{4}-\d\d-\d\d [\d:,]+ INFO )")


def events(server: Server) -> None:
    """Print, since the last call, the ASGI events the trace printed and what the consumer printed between them.

    The server's access lines are left out and each printed scope is folded to one line; `output()` shows all.
    """
    from ..scopes import SCOPE, scope_keys

    text = _settled(server)
    new = text[_shown.get(server.log_path, 0):]
    _shown[server.log_path] = len(text)
    new = SCOPE.sub(lambda scope: f"{{… the scope, {len(scope_keys(scope.group(0)))} keys …}}", new)
    lines = [line for line in fold_tracebacks(new, server.project).splitlines() if not SERVER_LINE.match(line)]
    print("\n".join(lines).strip("\n") or "(no event since the last look)")


def printed_scope(server: Server) -> str:
    """Wait until the server has printed a scope (pprint-ed by its consumer); return the last one."""
    from ..scopes import SCOPE, last_scope

    server.wait_for_log(SCOPE.pattern)
    return last_scope(server.log_text())


if "ipykernel" in sys.modules:
    check_kernel()
    from IPython import get_ipython

    if get_ipython() is not None:
        get_ipython().register_magic_function(in_step, "cell", "in_step")
