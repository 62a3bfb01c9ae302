"""What the notebooks call: start a step's server, show its diff and output, compare scopes, show the page.

A notebook starts with `from workbook import notebooks as nb`. Servers it starts listen on a free port,
are stopped when the kernel exits (atexit), and when the kernel is killed (the guard in workbook/servers/guard.py).
"""

from __future__ import annotations

import atexit
import base64
import importlib.util
import json
import os
import re
import sys
import time
import urllib.request
from pathlib import Path
from textwrap import dedent

from ..errors import WorkbookError
from ..servers.logs import fold_scopes, fold_tracebacks
from ..registry import Step, get_step, previous
from ..servers.ports import port_is_free
from ..servers.server import Server
from ..state import TIMEOUT
from ..environment.venv import venv_python

DEV_COMMANDS = {"lab", "notebook", "notebooks-html"}
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


def _step(step: Step | int | str) -> Step:
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
    step = _step(step)
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
    from concurrent.futures import ThreadPoolExecutor

    chosen = list(servers) or [running for _, running in _running]
    if not chosen:
        return
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

    step = _step(line.strip())
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


def inprocess_scope(step: Step | int | str) -> str:
    """Connect to a step's consumer with channels' test client, in a fresh interpreter; return the scope it printed."""
    from ..communicator import drive
    from ..scopes import last_scope

    step = _step(step)
    scope = last_scope(drive(step, [])["printed"])
    if scope is None:
        raise WorkbookError(f"{step.label}'s consumer printed no scope: it pprints self.scope from step 3 on")
    return scope


def compare_scopes(before: str, after: str, before_label: str = "before", after_label: str = "after"):
    """Put two printed scopes side by side, one row per key, the keys only `after` has highlighted."""
    from ..scopes import compare

    return compare(before, after, before_label, after_label)


# --- code and pages ------------------------------------------------------------
def diff(step: Step | int | str):
    """Return the step's changes since the previous step, as HTML Jupyter renders (read from steps/)."""
    from ..diffs import as_html

    step = _step(step)
    return as_html(previous(step), step)


class Source(str):
    """Source code that Jupyter shows highlighted, with inline styles so HTML copies keep them."""

    language = "text"

    def _repr_html_(self) -> str:
        from pygments import highlight
        from pygments.formatters import HtmlFormatter
        from pygments.lexers import get_lexer_by_name

        mono = "font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 13px"
        return highlight(str(self), get_lexer_by_name(self.language), HtmlFormatter(noclasses=True, prestyles=mono))

    def __repr__(self) -> str:
        return str(self)


def source(step: Step | int | str | Path, path: str, between: tuple[str, str] | None = None,
           language: str | None = None):
    """Return a file of a step or directory (or the part between two marker lines), highlighted."""
    directory = step if isinstance(step, Path) else _step(step).path
    text = (directory / path).read_text(encoding="utf-8")
    if between:
        start, end = between
        match = re.search(re.escape(start) + r"\n(.*?)\n[ \t]*" + re.escape(end), text, re.DOTALL)
        if not match:
            raise WorkbookError(f"{path} has no {start} … {end} block")
        text = dedent(match.group(1))
    suffixes = {".py": "python", ".html": "html", ".js": "javascript", ".toml": "toml"}
    code = Source(text)
    in_script = bool(between) and between[0].startswith("<script")
    code.language = language or ("javascript" if in_script else suffixes.get(Path(path).suffix, "text"))
    return code


def fetch(url: str) -> str:
    """GET a URL, print its status and page title, and return the body."""
    with urllib.request.urlopen(url, timeout=TIMEOUT) as response:
        body = response.read().decode("utf-8", errors="replace")
        title = re.search(r"<title>(.*?)</title>", body, re.DOTALL)
        print(f"GET {url} -> {response.status} {response.reason}, title: {title.group(1) if title else '(none)'}")
    return body


def contents():
    """Return the table of stages from the registry, each linked to its notebook."""
    from IPython.display import Markdown

    from ..registry import load_steps

    rows = ["| Stage | The one idea | Notebook |", "|---|---|---|"]
    for step in load_steps():
        name = step.notebook.name
        link = f"[{name}]({name})" if step.notebook.exists() else "(not written yet)"
        rows.append(f"| {step.number:02d} · {step.title} | {step.goal} | {link} |")
    return Markdown("\n".join(rows))


def page(server: Server, say: str | None = None):
    """Show the live page as a link and a screenshot taken now in headless Chromium; `say` sends it from the form.

    Not an IFrame: every step keeps XFrameOptionsMiddleware, whose `X-Frame-Options: DENY` blanks the page in one.
    """
    from concurrent.futures import ThreadPoolExecutor

    from IPython.display import HTML

    from ..browser import BrowserMissing

    url = server.http_url
    link = f'<p>The live page: <a href="{url}" target="_blank">{url}</a> (opens in a new tab)</p>'
    try:
        # Playwright's sync API refuses a thread with a running event loop, and the kernel's has one.
        with ThreadPoolExecutor(1) as pool:
            png = pool.submit(_screenshot, server.http_url, say).result()
    except BrowserMissing as missing:
        return HTML(f"{link}<p>No screenshot: {missing}</p>")
    image = base64.b64encode(png).decode("ascii")
    caption = f"Headless Chromium, just now{f', after sending {say!r} from the form' if say else ''}:"
    return HTML(f'{link}<p>{caption}</p><img alt="the page of {server.label}" src="data:image/png;base64,{image}">')


def _screenshot(url: str, say: str | None) -> bytes:
    from ..browser import launch, open_page, send_from_form, wait_received

    with launch() as browser:
        shown = open_page(browser, url)
        if say:
            send_from_form(shown, say)
            wait_received(shown, 1)
        return shown.screenshot(full_page=True, caret="hide", animations="disabled")


# --- command line ----------------------------------------------------------------
def add_commands(sub) -> None:
    """Add `lab`, `notebook N` and `notebooks-html` to the command line (Jupyter is imported only when run)."""
    from ..registry import ROOT

    def lazily(name: str):
        def run(args) -> int:
            from . import jupyter

            return getattr(jupyter, name)(args)

        return run

    port = int(os.environ.get("JUPYTER_PORT") or 8888)
    lab = sub.add_parser("lab", help="open JupyterLab on notebooks/, with the project's .venv as kernel")
    notebook = sub.add_parser("notebook", help="open a stage's notebook in JupyterLab: `notebook 3`")
    notebook.add_argument("step", nargs="?", help="step number, e.g. 3 (the start-here notebook when left out)")
    for command, func in ((lab, "cmd_lab"), (notebook, "cmd_notebook")):
        command.add_argument("--port", type=int, default=port, help="JupyterLab's port (default 8888)")
        command.add_argument("--no-browser", action="store_true", help="print the URL instead of opening it")
        command.set_defaults(func=lazily(func))
    html = sub.add_parser("notebooks-html", help="execute every notebook and write HTML copies for offline reading")
    html.add_argument("--out", default=str(ROOT / "build" / "notebooks"), help="where (default build/notebooks/)")
    html.set_defaults(func=lazily("cmd_html"))


if "ipykernel" in sys.modules:
    check_kernel()
    from IPython import get_ipython

    if get_ipython() is not None:
        get_ipython().register_magic_function(in_step, "cell", "in_step")
