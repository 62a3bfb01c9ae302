"""The day-before check: is this laptop ready for a session? One line per check, ✔, ✘ or ⚠ (optional).

`python -m workbook preflight` (make preflight) runs before and without the virtualenv: standard library only at
import time, so a laptop with no .venv/ still gets its lines. With a ready .venv/ it runs again inside it, where it
serves step 4 for real through the runner and echoes a message over a websocket. It stays one module of
about 260 lines on purpose: all it may import before .venv/ exists is in plain sight in one file.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from .. import console
from ..environment import pythons, venv
from ..environment.pythonpath import importable
from ..errors import WorkbookError

ECHO_STEP = 4
# Room for logs, databases, backups and a browser profile; a missing .venv/ needs about 600 MB more.
SPARE_MB, VENV_MB = 300, 600
GET_CHROMIUM = (
    "optional, for `make test` and the screenshots (learners may use any browser): on Debian/Ubuntu "
    "`sudo apt-get install chromium`, elsewhere `.venv/bin/python -m playwright install chromium`"
)


@dataclass(frozen=True)
class Line:
    mark: str  # "ok", "fail" or "warn"
    text: str

    def render(self, marks: dict[str, str]) -> str:
        return f"{marks[self.mark]} {self.text}"


def _say(make: str, python: str) -> str:
    return f"`make {make}`" if os.environ.get("MAKELEVEL") else f"`python -m workbook {python}`"


# --- the checks -----------------------------------------------------------------------------------------
def check_python() -> Line:
    """The interpreter in use (the virtualenv's, once there is one) is in the supported range."""
    here = sys.version_info[:2]
    shown = ".".join(map(str, sys.version_info[:3]))
    if pythons.is_supported(here):
        return Line("ok", f"Python {shown} (the workbook supports {pythons.describe()})")
    if venv.installed_uv():
        return Line("warn", f"Python {shown} is outside {pythons.describe()}, but uv is installed and "
                            f"{_say('setup', 'setup')} will fetch Python {pythons.recommended()}")
    return Line("fail", venv.unsupported_message(here))


def check_venv() -> Line:
    """The virtualenv exists and holds what the locks pin."""
    where = f"{venv.VENV.name}/"
    if venv.is_ready("dev"):
        return Line("ok", f"virtualenv {where} holds what the lock pins, the notebooks' and tests' packages included")
    if venv.is_ready("base"):
        return Line("warn", f"virtualenv {where} has the steps' packages but not the notebooks' and tests': "
                            f"run {_say('setup', 'setup --dev')} (needs the network)")
    state = "is out of date with the locks" if venv.venv_python().exists() else "does not exist yet"
    return Line("fail", f"virtualenv {where} {state}: run {_say('setup', 'setup --dev')} at home, where the "
                        "network is fast (or `make setup WHEELHOUSE=path` from the instructor's wheelhouse)")


def check_port() -> Line:
    """Port 8000 (or $PORT) is free for `make step-N run`."""
    from ..servers.listen import given, is_busy, listen_problem, read_port, try_bind

    port_given = given("PORT", None)
    try:
        port = read_port(port_given)
    except WorkbookError as wrong:
        return Line("fail", str(wrong))
    problem = try_bind("127.0.0.1", port)
    if problem is None:
        return Line("ok", f"port {port} is free")
    if not is_busy(problem):
        return Line("fail", listen_problem(problem, "127.0.0.1", port_given))
    holder = None
    try:
        from ..servers.ports import who_holds

        holder = who_holds(port)
    except ImportError:  # Python 3.10 without the virtualenv has no tomli for the registry
        pass
    why = f"{holder} is still running there" if holder else "another program listens there"
    return Line("fail", f"port {port} is busy ({why}): stop it (Ctrl-C in its terminal, or {_say('stop', 'stop')}), "
                        f"or use another port for the whole session, e.g. PORT={port + 1} make step-1 run")


def check_echo() -> Line:
    """A real server of step 4 starts through the runner and echoes a message over a websocket."""
    import asyncio

    from .. import client
    from ..registry import get_step
    from ..servers.server import Server

    step = get_step(ECHO_STEP)
    shown = step.path.relative_to(venv.ROOT).as_posix() if step.path.is_relative_to(venv.ROOT) else str(step.path)
    repair = (f"`git status {shown}` shows what changed there (`git checkout -- {shown}` restores it); "
              f"`make doctor DIR={shown}` names known causes")
    started = time.monotonic()
    server = Server(step, label=f"preflight-{step.id}")
    try:
        server.start()
    except WorkbookError as failed:
        return Line("fail", f"step {step.number} did not start: {failed}: {repair}")
    try:
        reply = asyncio.run(client.echo(server.ws_url(), "preflight", quiet=True))
    except Exception as failed:  # any failure of the conversation is the finding itself
        what = str(failed).splitlines()[0] if str(failed) else type(failed).__name__
        return Line("fail", f"step {step.number} started but did not echo ({type(failed).__name__}: {what}): "
                            f"{repair}")
    finally:
        server.stop()
    if reply != {"message": "preflight"}:
        return Line("fail", f"step {step.number} answered {reply!r} instead of the echo: {repair}")
    return Line("ok", f"step {step.number} starts and echoes over a websocket "
                      f"({time.monotonic() - started:.1f} s)")


def find_chromium() -> str | None:
    """Return a Chromium or Chrome a learner's PATH (or WORKBOOK_BROWSER, or Playwright's download) provides."""
    chosen = os.environ.get("WORKBOOK_BROWSER")
    if chosen:
        return shutil.which(chosen) or (chosen if Path(chosen).is_file() else None)
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    # Where `playwright install chromium` puts it on Linux, macOS and Windows.
    caches = {"darwin": Path.home() / "Library" / "Caches", "win32": Path(os.environ.get("LOCALAPPDATA", Path.home()))}
    downloads = Path(os.environ.get("PLAYWRIGHT_BROWSERS_PATH")
                     or caches.get(sys.platform, Path.home() / ".cache") / "ms-playwright")
    patterns = ("chrome-linux*/chrome", "chrome-mac*/Chromium.app/Contents/MacOS/Chromium", "chrome-win*/chrome.exe")
    for pattern in patterns:
        for candidate in sorted(downloads.glob(f"chromium-*/{pattern}"), reverse=True):
            return str(candidate)
    return None


def check_chromium() -> Line:
    """A headless Chromium starts and renders a page (optional)."""
    found = find_chromium()
    if found is None:
        return Line("warn", f"no Chromium found: {GET_CHROMIUM}")
    try:
        done = subprocess.run(
            [found, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--dump-dom",
             "data:text/html,<p id=preflight>ok</p>"],
            capture_output=True, text=True, timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired) as failed:
        return Line("warn", f"{found} did not start ({failed}): {GET_CHROMIUM}")
    if 'id="preflight"' not in done.stdout:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1][:120]
        return Line("warn", f"{found} did not render a page ({last}): {GET_CHROMIUM}")
    return Line("ok", f"Chromium starts headless ({found})")


def check_redis() -> Line:
    """A redis-server is installed (optional: step 7's two servers and final/ on Redis)."""
    found = shutil.which("redis-server")
    get = ("install one (Debian/Ubuntu: sudo apt install redis-server; macOS: brew install redis; "
           "Windows: WSL, or Docker: docker run -p 6379:6379 redis)")
    if found is None:
        return Line("warn", f"no redis-server: optional, for step 7's two servers sharing a room: {get}")
    try:
        version = subprocess.run([found, "--version"], capture_output=True, text=True, timeout=10).stdout.split()
    except (OSError, subprocess.TimeoutExpired) as failed:
        return Line("warn", f"{found} does not run ({failed}): {get}")
    number = next((word.removeprefix("v=") for word in version if word.startswith("v=")), "?")
    return Line("ok", f"Redis {number} ({found}; `make redis` starts one for step 7)")


def check_disk() -> Line:
    """There is room for what a session writes (and for the virtualenv when it is still to be made)."""
    free_mb = shutil.disk_usage(venv.ROOT).free // 2**20
    need = SPARE_MB + (0 if venv.is_ready("base") else VENV_MB)
    shown = f"{free_mb / 1024:.1f} GB" if free_mb >= 1024 else f"{free_mb} MB"
    if free_mb < need:
        return Line("fail", f"only {shown} free on this disk, the session needs about {need} MB: "
                            "free some space (emptying the trash or old downloads), then run this again")
    return Line("ok", f"{shown} free on disk")


# --- running them ---------------------------------------------------------------------------------------
def run_checks(report) -> list[Line]:
    """Run every check in order, reporting each line as it comes; return them."""
    lines = []

    def add(line: Line) -> None:
        lines.append(line)
        report(line)

    from concurrent.futures import ThreadPoolExecutor

    # The browser's headless start overlaps the server's; the lines still come out in order.
    pool = ThreadPoolExecutor(max_workers=1)
    browser = pool.submit(check_chromium)
    add(check_python())
    venv_line = check_venv()
    add(venv_line)
    add(check_port())
    if venv.in_venv() and venv_line.mark != "fail":
        add(check_echo())
    else:
        add(Line("fail", f"step {ECHO_STEP} was not served: it needs the virtualenv (see above)"))
    add(browser.result())
    pool.shutdown()
    add(check_redis())
    add(check_disk())
    return lines


def main(argv: list[str]) -> int:
    """Run the preflight; exit 1 when something a session needs is missing."""
    parser = argparse.ArgumentParser(prog="python -m workbook preflight",
                                     description="Check that this laptop is ready for a session (about 15 s).")
    parser.parse_args(argv)
    if not venv.in_venv() and venv.is_ready("base"):
        # The server check needs Django: carry on inside the virtualenv, which needs no set-up.
        python = str(venv.venv_python())
        return subprocess.call([python, "-m", "workbook", "preflight", *argv], env=importable(os.environ, venv.ROOT))
    started, marks = time.monotonic(), console.marks({"ok": "✔", "fail": "✘", "warn": "⚠"},
                                                      {"ok": "OK  ", "fail": "FAIL", "warn": "WARN"})
    print("workbook preflight: is this laptop ready for the session?", flush=True)
    lines = run_checks(lambda line: print(line.render(marks), flush=True))
    failed = sum(line.mark == "fail" for line in lines)
    warned = sum(line.mark == "warn" for line in lines)
    took = f"{time.monotonic() - started:.1f} s"
    if failed:
        print(f"preflight: {failed} problem(s) to fix before the session (the {marks['fail'].strip()} lines say "
              f"how), then run {_say('preflight', 'preflight')} again ({took})")
        return 1
    extra = f"; {warned} optional item(s) missing ({marks['warn'].strip()})" if warned else ""
    print(f"preflight: ready for the session{extra} ({took})")
    return 0


def add_commands(sub) -> None:
    """List preflight in the help; `main` in cli.py runs it before the virtualenv is checked."""
    sub.add_parser("preflight", help="is this laptop ready for a session? one line per check (make preflight)")
