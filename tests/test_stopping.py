"""A run stops and frees its port within 2 s, whether a terminal, `setsid … &` or `sh -c '… &'` started it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import pytest
from conftest import STARTED_GROUPS, group_alive

from workbook.registry import ROOT
from workbook.servers.server import TIMEOUT, free_port, port_is_free

pytestmark = pytest.mark.skipif(os.name == "nt", reason="process groups and sh are POSIX")

# What the issue asks of every stop, however the run began.
STOP_WITHIN = 2.0


def runner(port: int) -> str:
    return f"{sys.executable} -m workbook run 4 --port {port}"


def start_foreground(port: int, log) -> tuple[int, int]:
    """A terminal: the runner leads its own process group, SIGINT at its default."""
    process = subprocess.Popen(runner(port).split(), cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                               stdin=subprocess.DEVNULL, start_new_session=True)
    return process.pid, process.pid


def start_in_background(shell_line: str, log, own_session: bool = False) -> tuple[int, int]:
    """A background job of a non-interactive shell, which starts with SIGINT ignored; return (runner, its group)."""
    shell = subprocess.Popen(["sh", "-c", f"{shell_line} & echo $!"], cwd=ROOT, stdout=subprocess.PIPE, stderr=log,
                             stdin=subprocess.DEVNULL, text=True, start_new_session=True)
    pid = int(shell.communicate(timeout=TIMEOUT)[0].split()[-1])
    return pid, pid if own_session else shell.pid


STARTS = {
    "foreground": start_foreground,
    # setsid in a job that does not lead its group sets up the session itself, so $! is the runner.
    "setsid-background": lambda port, log: start_in_background(f"exec setsid {runner(port)} >>{log.name} 2>&1", log,
                                                               own_session=True),
    "sh-c-background": lambda port, log: start_in_background(f"{runner(port)} >>{log.name} 2>&1", log),
}


def workbook_stop(pid: int, port: int) -> None:
    subprocess.run([sys.executable, "-m", "workbook", "stop", "--port", str(port)], cwd=ROOT, check=True,
                   capture_output=True, timeout=TIMEOUT)


STOPS = {
    "sigint": lambda pid, port: os.kill(pid, signal.SIGINT),
    "sigterm": lambda pid, port: os.kill(pid, signal.SIGTERM),
    "workbook-stop": workbook_stop,
}


def listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def alive(pid: int) -> bool:
    try:
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False  # our own child (the foreground start), now reaped
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie has ended; only its parent has not read its status yet.
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


@pytest.mark.parametrize("stop", STOPS)
@pytest.mark.parametrize("start", STARTS)
def test_a_stop_frees_the_port_within_two_seconds_however_the_run_was_started(start, stop, tmp_path):
    """SIGINT, SIGTERM or `workbook stop` frees the run's port within 2 s, and every process of the run ends."""
    port = free_port()
    with open(tmp_path / "run.log", "w") as log:
        pid, group = STARTS[start](port, log)
    STARTED_GROUPS.append(group)
    try:
        deadline = time.monotonic() + TIMEOUT
        while not listening(port):
            assert alive(pid), f"the runner exited: {(tmp_path / 'run.log').read_text()}"
            assert time.monotonic() < deadline, f"nothing listened on {port} within {TIMEOUT} s"
            time.sleep(0.05)
        STOPS[stop](pid, port)
        deadline = time.monotonic() + STOP_WITHIN
        while not port_is_free(port) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert port_is_free(port), f"port {port} still taken {STOP_WITHIN} s after the stop"
        deadline = time.monotonic() + TIMEOUT
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not alive(pid), "the runner outlived its server"
        assert "Traceback" not in (tmp_path / "run.log").read_text()
    finally:
        # A runner that has exited may wait a moment for init to collect it; anything still running is killed.
        deadline = time.monotonic() + TIMEOUT
        while alive(pid) or group_alive(group):
            if time.monotonic() > deadline:
                break
            time.sleep(0.05)
        if group_alive(group):
            os.killpg(group, signal.SIGKILL)
