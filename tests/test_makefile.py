"""The commands learners and instructors type: `make help`, `make step-N run` and friends."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request

import pytest
from conftest import group_alive

from workbook import client
from workbook.registry import ROOT
from workbook.servers.server import TIMEOUT, free_port, port_is_free

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed (use python -m workbook)")


def make(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(["make", "--no-print-directory", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=TIMEOUT * 4, **kwargs)


def wait_for_port(port: int, process: subprocess.Popen, timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, "make exited before the server answered"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"nothing answered on port {port} within {timeout} s")


@pytest.fixture
def make_run(foreground):
    """Start `make …` in its own process group, like a terminal would, and always end it."""

    def start(*args: str, port: int) -> subprocess.Popen:
        return foreground(["make", "--no-print-directory", *args], env={"PORT": str(port)})

    return start


def output(process) -> str:
    return process.output()


def test_help_is_the_default_goal_and_lists_every_public_target():
    """Plain `make` prints the help, with a line for run, diff and test."""
    result = make()
    assert result.returncode == 0
    for target in ("run", "diff", "test", "clean", "list"):
        assert f"make {target} " in result.stdout
    assert "make step-N run" in result.stdout


def test_make_step_n_run_answers_on_port_and_stops_cleanly_on_ctrl_c(make_run):
    """`make step-4 run` serves on PORT, echoes, and Ctrl-C stops it with nothing left behind."""
    port = free_port()
    process = make_run("step-4", "run", port=port)
    wait_for_port(port, process)
    reply = asyncio.run(client.echo(f"ws://127.0.0.1:{port}/ws/chat/", "via make", quiet=True))
    assert reply == {"message": "via make"}
    # Ctrl-C in a terminal sends SIGINT to the whole foreground process group.
    os.killpg(process.pid, signal.SIGINT)
    process.wait(TIMEOUT)
    assert "workbook: stopped step 4 · Routing." in output(process)
    assert not group_alive(process.pid)
    assert port_is_free(port)
    assert "Traceback" not in output(process)


def test_make_run_with_step_variable_is_the_same_as_the_goal_form(make_run):
    """`make run STEP=1` serves step 1's page."""
    port = free_port()
    process = make_run("run", "STEP=1", port=port)
    wait_for_port(port, process)
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as response:
        assert "Step 01 · Bare ASGI" in response.read().decode()
    os.killpg(process.pid, signal.SIGINT)
    process.wait(TIMEOUT)


def test_a_busy_port_gives_one_line_that_suggests_the_next_port():
    """`make step-4 run` on a taken port prints the busy line with PORT=N+1 and fails."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        result = make("step-4", "run", env={**os.environ, "PORT": str(port)})
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.startswith("workbook:")]
    assert lines == [
        f"workbook: port {port} is busy (is another step or server still running?): "
        f"stop it, or run PORT={port + 1} make step-4 run"
    ]
    assert "Traceback" not in result.stderr


def test_an_unknown_step_gives_one_line():
    """`make step-42 run` names the steps that exist."""
    result = make("step-42", "run")
    assert result.returncode != 0
    assert "workbook: there is no step '42': choose 1 to" in result.stderr
    assert "Traceback" not in result.stderr


def test_run_without_a_step_says_how_to_name_one():
    """`make run` alone asks which step."""
    result = make("run")
    assert result.returncode != 0
    assert "which step? e.g. make step-4 run" in result.stdout + result.stderr


def test_step_diff_shows_what_the_step_added():
    """`make step-4 diff` shows routing.py appearing; `make diff A=2 B=4` spans two steps."""
    result = make("step-4", "diff")
    assert result.returncode == 0
    assert "+++ 04-routing/chat/routing.py" in result.stdout
    assert "+++ 04-routing/chat/routing.py" in make("diff", "A=2", "B=4").stdout


def test_a_missing_python_gives_one_line(tmp_path):
    """Without any python on PATH, a fresh checkout's make says to install one."""
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    shutil.copy(ROOT / "Makefile", checkout)
    (checkout / "uv.lock").write_text("")
    env = {"PATH": "/nonexistent", "HOME": str(tmp_path)}
    result = subprocess.run([shutil.which("make"), "list"], cwd=checkout, env=env, capture_output=True, text=True)
    assert result.returncode != 0
    assert "no python3 found: install Python 3.10-3.15" in result.stdout + result.stderr


def test_the_default_port_is_8000_as_in_the_article():
    """Without PORT or HOST, `make step-4 run` hands the runner PORT=8000 and HOST=127.0.0.1 in its environment."""
    env = {k: v for k, v in os.environ.items() if k not in ("PORT", "HOST")}
    assert "-m workbook run 4\n" in make("-n", "step-4", "run", env=env).stdout
    # The runner reads PORT and HOST itself, so a mistyped value reaches it as typed: show what a recipe sees.
    shown = make("--eval", "where: ; @echo $$HOST:$$PORT", "where", env=env)
    assert shown.stdout.strip() == "127.0.0.1:8000"
