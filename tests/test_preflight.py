"""`make preflight`: one line per check, and every ✘ comes from breaking that thing for real."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import IN_CI, need

from workbook.environment import venv
from workbook.registry import ROOT
from workbook.servers.server import TIMEOUT, free_port

# What a temporary copy of the checkout needs for the preflight: the runner, the registry, step 4, the locks.
COPIED = ["workbook", "steps/steps.toml", "steps/04-routing", "pitfalls/pitfalls.toml", "uv.lock", "pyproject.toml"]
# For a run whose browser line no test reads: a browser that is not there spares a headless Chromium's start (about
# a CPU-second). The tests of the browser line itself, and the ready laptop's, keep the real one.
NO_BROWSER = {"WORKBOOK_BROWSER": "/nonexistent/chromium"}


def mark(output: str, start: str) -> str:
    """Return the mark (✔, ✘ or ⚠) of the one line whose text starts with `start`."""
    found = [line[0] for line in output.splitlines() if line[:1] in "✔✘⚠" and line[2:].startswith(start)]
    assert len(found) == 1, output
    return found[0]


def preflight(env: dict | None = None, cwd: Path = ROOT, python: str = sys.executable) -> subprocess.CompletedProcess:
    """Run `python -m workbook preflight` on a free PORT (8000 may be another worktree's), with `env` added.

    As typed at a prompt: without make's variables, which `make test` would pass down and which change the advice.
    """
    typed = {name: value for name, value in os.environ.items() if name not in {"MAKELEVEL", "MAKEFLAGS", "MFLAGS"}}
    return subprocess.run([python, "-m", "workbook", "preflight"], cwd=cwd, capture_output=True, text=True,
                          timeout=TIMEOUT * 4, env={**typed, "PORT": str(free_port()), **(env or {})})


@pytest.fixture
def checkout(tmp_path):
    """A copy of the parts of the checkout the preflight reads, served with this checkout's virtualenv."""
    copy = tmp_path / "checkout"
    for name in COPIED:
        source, target = ROOT / name, copy / name
        if not source.exists():  # requirements/*.lock or uv.lock, whichever this checkout pins with
            continue
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "db.sqlite3*"))
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
    return copy


def test_a_ready_laptop_gets_a_tick_on_every_line_and_exit_0():
    """On this checkout every needed check passes, step 4 echoes, and the last line says ready."""
    result = preflight()
    assert result.returncode == 0, result.stdout + result.stderr
    for start in ("Python", "virtualenv", "port", "step 4", "Chromium" if IN_CI else "", "Redis" if IN_CI else ""):
        if start:
            assert mark(result.stdout, start) == "✔", result.stdout
    assert "step 4 starts and echoes over a websocket" in result.stdout
    assert result.stdout.splitlines()[-1].startswith("preflight: ready for the session")


def test_a_busy_port_is_a_cross_that_says_how_to_carry_on():
    """With something listening on $PORT, the port line is ✘, names the port and another, and the exit is 1."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))  # the kernel's pick: a free_port() probe could be taken before the bind
        busy.listen()
        port = busy.getsockname()[1]
        result = preflight({"PORT": str(port), **NO_BROWSER})
    assert result.returncode == 1, result.stdout
    assert (f"✘ port {port} is busy (another program listens there): stop it (Ctrl-C in its terminal, or "
            f"`python -m workbook stop`), or use another port for the whole session, e.g. PORT={port + 1} "
            "make step-1 run") in result.stdout
    assert mark(result.stdout, "step 4") == "✔"  # the echo server picks its own free port


def test_without_a_virtualenv_preflight_still_answers_and_says_to_set_up(tmp_path):
    """Run by a plain Python with no .venv/, it names the missing virtualenv, serves nothing and creates nothing."""
    missing = tmp_path / "no-venv"
    result = preflight({"WORKBOOK_VENV": str(missing), **NO_BROWSER}, python=sys._base_executable)
    assert result.returncode == 1, result.stdout + result.stderr
    assert ("✘ virtualenv no-venv/ does not exist yet: run `python -m workbook setup --dev` at home") in result.stdout
    assert "✘ step 4 was not served: it needs the virtualenv (see above)" in result.stdout
    assert mark(result.stdout, "Python") == "✔"
    assert not missing.exists()


BROKEN = {
    "does-not-import": ("def connect(self):", "def connect(self) oops:", "step 4 did not start: "),
    "raises-on-receive": ("text_data_json = json.loads(text_data)", "raise RuntimeError('broken on purpose')",
                          "step 4 started but did not echo (ConnectionClosedError"),
}


@pytest.mark.parametrize("how", BROKEN)
def test_a_broken_step_4_is_a_cross_that_says_how_to_repair_it(how, checkout):
    """A copy of the checkout whose step 4 consumer is broken for real gets ✘ on the server line and exit 1."""
    old, new, said = BROKEN[how]
    consumer = checkout / "steps" / "04-routing" / "chat" / "consumers.py"
    text = consumer.read_text(encoding="utf-8")
    assert old in text
    consumer.write_text(text.replace(old, new, 1), encoding="utf-8")
    result = preflight({"WORKBOOK_VENV": str(venv.VENV), **NO_BROWSER}, cwd=checkout, python=str(venv.venv_python()))
    assert result.returncode == 1, result.stdout + result.stderr
    line = next(line for line in result.stdout.splitlines() if line.startswith("✘ step 4"))
    assert line.startswith(f"✘ {said}"), line
    assert line.endswith("`git status steps/04-routing` shows what changed there (`git checkout -- steps/04-routing`"
                         " restores it); `make doctor DIR=steps/04-routing` names known causes"), line
    assert mark(result.stdout, "virtualenv") == "✔"


def test_without_chromium_the_browser_line_is_a_warning_with_how_to_get_it(tmp_path):
    """With no Chromium on PATH nor from Playwright, the browser line is ⚠ with the install commands; exit stays 0."""
    empty = tmp_path / "bin"
    empty.mkdir()
    env = {"PATH": str(empty), "PLAYWRIGHT_BROWSERS_PATH": str(tmp_path / "none"), "WORKBOOK_BROWSER": ""}
    result = preflight(env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert ("⚠ no Chromium found: optional, for `make test` and the screenshots (learners may use any browser): "
            "on Debian/Ubuntu `sudo apt-get install chromium`") in result.stdout
    assert "⚠ no redis-server: optional, for step 7's two servers sharing a room" in result.stdout
    assert "optional item(s) missing" in result.stdout.splitlines()[-1]


def test_a_chromium_that_is_there_starts_headless_and_renders():
    """Where a Chromium is installed, the preflight's browser line is ✔ after a real headless start."""
    from workbook.classroom.preflight import check_chromium, find_chromium

    need(find_chromium() is not None, "Chromium", "on Debian/Ubuntu run `sudo apt-get install chromium`")
    line = check_chromium()
    assert (line.mark, line.text.startswith("Chromium starts headless")) == ("ok", True), line


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed (use python -m workbook preflight)")
def test_make_preflight_runs_from_the_system_python_inside_the_ready_virtualenv():
    """`make preflight` starts from python3 outside .venv/, carries on inside it, and says `make` in its advice."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))  # the kernel's pick: a free_port() probe could be taken before the bind
        busy.listen()
        port = busy.getsockname()[1]
        done = subprocess.run(["make", "--no-print-directory", "preflight", f"PYTHON={sys._base_executable}"],
                              cwd=ROOT, capture_output=True, text=True, timeout=TIMEOUT * 4,
                              env={**os.environ, "PORT": str(port), **NO_BROWSER})
    assert done.returncode == 2, done.stdout + done.stderr  # make's own code for a recipe that failed
    assert mark(done.stdout, "virtualenv") == "✔" and mark(done.stdout, "step 4") == "✔", done.stdout
    assert f"or use another port for the whole session, e.g. PORT={port + 1} make step-1 run" in done.stdout
    assert "(Ctrl-C in its terminal, or `make stop`)" in done.stdout
    assert done.stdout.splitlines()[-1].startswith("preflight: 1 problem(s) to fix before the session")


def test_a_chromium_that_playwright_downloaded_is_found_off_the_path(tmp_path, monkeypatch):
    """With no browser on PATH, a Chromium in Playwright's download folder is the one the browser line starts."""
    from workbook.classroom.preflight import check_chromium, find_chromium

    real = find_chromium()
    need(real is not None and sys.platform.startswith("linux"), "Chromium on Linux",
         "on Debian/Ubuntu run `sudo apt-get install chromium`")
    download = tmp_path / "ms-playwright" / "chromium-1200" / "chrome-linux64" / "chrome"
    download.parent.mkdir(parents=True)
    download.symlink_to(real)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("PLAYWRIGHT_BROWSERS_PATH", str(tmp_path / "ms-playwright"))
    monkeypatch.delenv("WORKBOOK_BROWSER", raising=False)
    assert find_chromium() == str(download)
    line = check_chromium()
    assert (line.mark, line.text) == ("ok", f"Chromium starts headless ({download})")
