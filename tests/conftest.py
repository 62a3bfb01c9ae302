"""Shared fixtures: the steps as readable parameters, servers that always stop, CI-aware skips."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
from contextlib import ExitStack
from pathlib import Path

import pytest
import xdist_order

from workbook import Server, load_steps
from workbook.registry import ROOT
from workbook.servers.process import group_alive
from workbook.servers.server import TIMEOUT

STEPS = load_steps()
# The doctor's modules: the tests that hold its findings to the failure catalogue read them from here, in one place,
# so a move of the doctor cannot leave them reading nothing.
DOCTOR_MODULES = sorted((ROOT / "workbook" / "doctor").glob("*.py"))
# Process groups of every server a test started; none may be alive when the session ends.
STARTED_GROUPS: list[int] = []
# Stops of servers the fixtures have let go of, each in a thread of its own: a stop mostly waits for its server to
# end (daphne takes about 0.3 s), and the next test need not wait with it. The session's end joins them all.
STOPPING: list[threading.Thread] = []
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
HOWS = ["runserver", "daphne"]


def steps(*numbers: int) -> list:
    """Parametrise over the given steps (all when none given), with ids like `04-routing`."""
    chosen = [s for s in STEPS if not numbers or s.number in numbers]
    return [pytest.param(step, id=step.id) for step in chosen]


def need(found: bool, what: str, how_to_get_it: str) -> None:
    """Skip on a learner's machine when something is missing; fail in CI, where it must be there."""
    if found:
        return
    message = f"{what} is not available: {how_to_get_it}"
    if IN_CI:
        pytest.fail(f"CI must provide it: {message}")
    pytest.skip(message)


def pytest_report_header(config):
    """Name the stack under test in the header, so a CI log shows which releases were checked."""
    from workbook.maintainer.latest import versions, versions_line

    return f"stack: {versions_line(versions())} ({os.path.relpath(sys.prefix, ROOT)})"


@pytest.fixture
def serve():
    """Start servers with the runner; every one is stopped at teardown, even when the test fails."""
    started: list[Server] = []

    def start(project, **options) -> Server:
        server = Server(project, **options)
        started.append(server)
        server.start()
        STARTED_GROUPS.append(server.pid)
        return server

    yield start
    stop_behind(started)


def stop_behind(servers) -> None:
    """Stop these servers in threads of their own while the session goes on; the session's end waits for them."""
    for server in servers:
        thread = threading.Thread(target=server.stop, name=f"stop {server.label}", daemon=True)
        thread.start()
        STOPPING.append(thread)


async def hears_only_its_own(ws, text: str = "is anyone else here?") -> bool:
    """Send {"message": text} on a room's socket; tell whether its next frame is that message, so nothing came first.

    Frames of one socket arrive in order, so this proves that nothing sent earlier reached it, without waiting.
    """
    from workbook import client

    await client.send_json(ws, {"message": text}, quiet=True)
    frame = await client.receive(ws, quiet=True)
    # From step 09 on a frame also names its sender; only the message says whose frame came first.
    mine = isinstance(frame, dict) and frame.get("message") == text
    if not mine:
        print("unexpected frame:", frame)
    return mine


# A login checks a password at Django's 1,000,000 PBKDF2 iterations: tests that only use a session, and never end
# it, share one per server and user.
SESSIONS: dict[tuple[str, str], str] = {}


def logged_in_once(server, username: str, password: str) -> str:
    """Return a session key for `username` on this server, logging in through its form the first time only."""
    from workbook.login import login

    key = (server.http_url, username)
    if key not in SESSIONS:
        SESSIONS[key] = login(server.http_url, username, password)
    return SESSIONS[key]


def saved_messages(project: Path, room: str) -> int:
    """Count a room's saved messages (steps 10 on), read from the project's database without starting Django."""
    import sqlite3

    uri = f"{(Path(project) / 'db.sqlite3').as_uri()}?mode=ro"
    with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=TIMEOUT)) as db:
        return db.execute("SELECT COUNT(*) FROM chat_message WHERE room = ?", (room,)).fetchone()[0]


def by_turns(monkeypatch, name: str, value: str, call, rounds: int = 3) -> list:
    """Call `call()` with the environment variable `name` unset, then set to `value`, `rounds` times; return the
    results in order (a step served now without REDIS_URL, now with it, as the stage and Redis tests take turns)."""
    done = []
    for _ in range(rounds):
        monkeypatch.delenv(name, raising=False)
        done.append(call())
        monkeypatch.setenv(name, value)
        done.append(call())
    return done


def run_python(*args: str, cwd=ROOT, env: dict | None = None, timeout: float = TIMEOUT * 4, **kwargs):
    """Run the venv's python with arguments; return the CompletedProcess (text mode)."""
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, env={**os.environ, **(env or {})},
        capture_output=True, text=True, timeout=timeout, **kwargs,
    )


def reused_servers(make, key):
    """Yield get(what, how): the server make(what, how) builds, started on first use, reused while it runs.

    `key(what, how)` names a server; every one started is stopped when the generator closes.
    """
    cache: dict = {}

    def get(what, how: str = "runserver"):
        name = key(what, how)
        server = cache.get(name)
        if server is None or not server.running:
            server = cache[name] = make(what, how)
            server.start()
            STARTED_GROUPS.append(server.pid)
        return server

    try:
        yield get
    finally:
        stop_behind(cache.values())


@pytest.fixture(scope="session")
def shared_server():
    """Return a running server for (step, how), started once per session and reused by read-only tests."""
    yield from reused_servers(lambda project, how: Server(project, how=how),
                              key=lambda project, how: (str(getattr(project, "path", project)), how))


@pytest.fixture
def redis_servers():
    """Start real redis-servers on free ports (or a given one); all are stopped at teardown."""
    from workbook.servers.redis import GET_REDIS, RedisServer, binary

    need(binary() is not None, "redis-server", GET_REDIS)
    started: list[RedisServer] = []

    def start(port: int | None = None) -> RedisServer:
        redis = RedisServer(port=port)
        started.append(redis)
        redis.start()
        STARTED_GROUPS.append(redis.pid)
        return redis

    yield start
    stop_behind(started)


@pytest.fixture(scope="session", autouse=True)
def no_server_left_behind():
    """After the whole session, no server any test started is still alive."""
    yield
    for thread in STOPPING:
        thread.join(TIMEOUT)
    if os.name == "nt":
        return
    alive = [pgid for pgid in STARTED_GROUPS if group_alive(pgid)]
    assert not alive, f"servers left running, process groups {alive}"


def end_group(process: subprocess.Popen, grace: float = TIMEOUT) -> None:
    """End a process that leads its own group as Ctrl-C in a terminal would; SIGKILL the group if it lingers."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGINT)
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


@pytest.fixture
def foreground(tmp_path):
    """Start commands as a terminal would (own process group, output to a file); each is ended at teardown.

    `start(cmd, env=…)` returns the Popen with `.log` (the file) and `.output()` (what it printed so far).
    `base_env` replaces os.environ as the environment `env` is added to.
    """
    started: list[subprocess.Popen] = []

    def start(cmd: list[str], env: dict | None = None, cwd=ROOT, base_env: dict | None = None) -> subprocess.Popen:
        log = tmp_path / f"foreground-{len(started)}.log"
        environment = {**(os.environ if base_env is None else base_env), **(env or {})}
        with open(log, "w") as out:
            process = subprocess.Popen(cmd, cwd=cwd, env=environment, stdout=out, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL, start_new_session=True)
        process.log = log
        process.output = lambda: log.read_text(errors="replace")
        started.append(process)
        STARTED_GROUPS.append(process.pid)
        return process

    yield start
    for process in started:
        end_group(process)


# One headless Chromium per worker, shared by every browser test (a launch costs Chromium, its GPU process and
# Playwright's driver about 2.5 CPU-s). Hand-written, not pytest-playwright's session browser, because of one catch:
# between its calls, Playwright's sync API leaves its own event loop marked as the thread's running loop, and then
# every asyncio.run() or async test in the same thread fails ("cannot be called from a running event loop"). So the
# mark is taken away while a test that does not use the browser runs (set-up, call and teardown), and put back
# before a fixture that uses the browser tears down, whichever test's teardown that falls in.
SESSION_BROWSER: set[int] = set()  # the shared browser's Playwright driver: its processes are meant to live on
_PLAYWRIGHT: dict = {"loop": None, "unmarked": False, "fixtures": {"chromium"}}


@pytest.fixture(scope="session")
def chromium():
    """One headless Chromium for the worker's whole session, closed at its end even when a test fails."""
    import asyncio

    import psutil

    from workbook import browser

    before = {child.pid for child in psutil.Process().children()}
    with ExitStack() as stack:
        try:
            found = stack.enter_context(browser.launch())
        except browser.BrowserMissing as missing:
            need(False, "a browser for the browser tests", str(missing))
        SESSION_BROWSER.update(child.pid for child in psutil.Process().children() if child.pid not in before)
        _PLAYWRIGHT["loop"] = asyncio._get_running_loop()
        yield found
    _PLAYWRIGHT["loop"] = None
    SESSION_BROWSER.clear()


def _unmarked(item):
    """Run one phase of a test that does not use the browser with no loop marked running; then mark it again."""
    import asyncio

    loop = _PLAYWRIGHT["loop"]
    if loop is None or "chromium" in item.fixturenames or asyncio._get_running_loop() is not loop:
        return (yield)
    asyncio._set_running_loop(None)
    _PLAYWRIGHT["unmarked"] = True
    try:
        return (yield)
    finally:
        _PLAYWRIGHT["unmarked"] = False
        if _PLAYWRIGHT["loop"] is not None:  # the last teardown may have closed the browser
            asyncio._set_running_loop(_PLAYWRIGHT["loop"])


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item):
    return (yield from _unmarked(item))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    return (yield from _unmarked(item))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item):
    return (yield from _unmarked(item))


@pytest.hookimpl(wrapper=True)
def pytest_fixture_setup(fixturedef, request):
    """A fixture that uses the browser gets the mark back before its own teardown runs (finalizers run last first)."""
    result = yield
    if fixturedef.argname in _PLAYWRIGHT["fixtures"] or _PLAYWRIGHT["fixtures"] & set(fixturedef.argnames):
        import asyncio

        _PLAYWRIGHT["fixtures"].add(fixturedef.argname)
        fixturedef.addfinalizer(lambda: _PLAYWRIGHT["loop"] and asyncio._set_running_loop(_PLAYWRIGHT["loop"]))
    return result


def pytest_fixture_post_finalizer(fixturedef, request):
    """After a fixture tore down inside a test that runs unmarked, take the mark away again."""
    if _PLAYWRIGHT["unmarked"]:
        import asyncio

        asyncio._set_running_loop(None)


class Tabs:
    """Tabs of one browser context, reused from test to test: each chat a test opens is a fresh document in one.

    A new tab costs Chromium a renderer process (about as much CPU as the page load itself); a load in an idle tab
    is a new document all the same, with its own script state and its own socket.
    """

    def __init__(self, context):
        self.context, self.idle, self.used = context, [], []

    def tab(self):
        """Return an idle tab, or a new one; it is idle again after the test."""
        page = self.idle.pop() if self.idle else self.context.new_page()
        page.set_default_timeout(TIMEOUT * 1000)
        self.used.append(page)
        return page

    def __call__(self, url: str, login: tuple[str, str] | None = None):
        """Load the chat page at `url` in a tab (logging in first when given) and wait for its socket to open."""
        from workbook import browser

        return browser.show_chat(self.tab(), url, login)

    def release(self) -> None:
        """Leave each tab this test used on about:blank (which closes its socket), routes removed, idle again."""
        from playwright.sync_api import Error

        for page in self.used:
            try:
                page.unroute_all()
                page.goto("about:blank")
            except Error:
                page.close()
            else:
                self.idle.append(page)
        self.used.clear()


# --- running in parallel (pytest-xdist with --dist loadgroup, as `python -m workbook test` does) -------------
# A test that reads a shared server, or a module-scoped fixture of its own module, goes to the worker that already
# holds it: `server-<project>` when it is parametrised by a step or project (the same worker then also owns that
# step's database), else `server-<module>` or `<module>`. A test or module marked with
# @pytest.mark.xdist_group("name") keeps its own group (test_users*.py: "server-09-users", step 9's database).
# The longest groups go first (tests/xdist_order.py), so no worker is left running one of them alone at the end.
MEASURED: dict[str, float] = {}  # this run's durations, recorded by the controller (or a run without xdist)


def _project_of(item) -> str | None:
    params = getattr(getattr(item, "callspec", None), "params", {})
    for name in ("step", "project"):
        if params.get(name) is not None:
            value = params[name]
            return getattr(value, "id", None) or os.path.basename(str(getattr(value, "path", value)))
    return None


def _module_fixture(item) -> bool:
    module = item.module.__name__
    return any(
        definition.scope == "module" and definition.baseid.endswith(f"{module}.py")
        for definitions in item._fixtureinfo.name2fixturedefs.values() for definition in definitions
    )


def xdist_group(item) -> str | None:
    """Name the group a test must share a worker with, or None when it can run anywhere."""
    project, module = _project_of(item), item.module.__name__
    if "shared_server" in item.fixturenames:
        return f"server-{project or module}"
    if _module_fixture(item):
        return f"server-{project}" if project else module
    return None


def _groups_file(controller_pid: int) -> Path:
    return Path(tempfile.gettempdir()) / f"workbook-xdist-groups-{controller_pid}.json"


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """Give each test its xdist group; in a parallel run, start the longest groups first and tell the controller."""
    for item in items:
        if item.get_closest_marker("xdist_group") is None and (group := xdist_group(item)):
            item.add_marker(pytest.mark.xdist_group(group))
    if os.environ.get("PYTEST_XDIST_WORKER"):
        def group_of(item):
            mark = item.get_closest_marker("xdist_group")
            return mark.args[0] if mark else None

        items[:] = xdist_order.longest_first(items, group_of, xdist_order.known(getattr(config, "cache", None)))
        # xdist 3.8 renames a grouped test `nodeid@group`, which pytest 9.2's nodeid no longer shows: the
        # controller (this worker's parent) reads the groups from a file instead, before it schedules anything.
        groups = {item.nodeid: mark.args[0] for item in items if (mark := item.get_closest_marker("xdist_group"))}
        target = _groups_file(os.getppid())
        partial = target.with_name(f"{target.name}.{os.getpid()}")
        partial.write_text(json.dumps(groups))
        os.replace(partial, target)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """Schedule --dist loadgroup by the groups the workers wrote (see pytest_collection_modifyitems)."""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadGroupScheduling

    class ByGroup(LoadGroupScheduling):
        groups: dict[str, str] | None = None

        def _split_scope(self, nodeid: str) -> str:
            scope = super()._split_scope(nodeid)
            if scope != nodeid:
                return scope
            if self.groups is None:
                found = _groups_file(os.getpid())
                self.groups = json.loads(found.read_text()) if found.exists() else {}
            return self.groups.get(nodeid, nodeid)

    return ByGroup(config, log)


def pytest_runtest_logreport(report):
    MEASURED[report.nodeid] = MEASURED.get(report.nodeid, 0.0) + report.duration


def pytest_sessionfinish(session):
    """Keep this run's durations for the next run's order: the controller's, or a run's without workers."""
    if not hasattr(session.config, "workerinput"):
        xdist_order.remember(getattr(session.config, "cache", None), MEASURED)


def pytest_unconfigure(config):
    if not hasattr(config, "workerinput"):
        _groups_file(os.getpid()).unlink(missing_ok=True)
