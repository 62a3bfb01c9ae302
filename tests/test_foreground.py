"""The foreground run that `run`, `pitfall run` and `redis` share: the server's log, the up line, a clean stop."""

from __future__ import annotations

import signal
import sys
import time

import pytest

from workbook.servers.ports import free_port, port_is_free
from workbook.servers.server import TIMEOUT

LINES = 2000
# A server that prints a long start-up banner, then listens; a Ctrl-C from its guard ends it.
CHATTY = f"""
import socket, sys
for n in range({LINES}):
    print(f"start-up line {{n}}")
sys.stdout.flush()
sock = socket.create_server(("127.0.0.1", int(sys.argv[1])))
try:
    while True:
        sock.accept()[0].close()
except KeyboardInterrupt:
    print("chatty server shut down")
"""
# The runner's side: the chatty server as a guarded process, run in the foreground like `run` runs a step.
RUNNER = f"""
import socket, sys, time
from pathlib import Path
from workbook.servers.foreground import foreground
from workbook.servers.process import GuardedProcess

class Chatty(GuardedProcess):
    def command(self):
        return [sys.executable, "-c", {CHATTY!r}, str(self.port)]

    def start(self, *args, **kwargs):
        time.sleep(float(sys.argv[3]) if len(sys.argv) > 3 else 0)  # work before the spawn, as a migrate is
        return super().start(*args, **kwargs)

    def answers(self):
        try:
            socket.create_connection((self.host, self.port), timeout=1).close()
            return True
        except OSError:
            return False

port = int(sys.argv[1])
chatty = Chatty(host="127.0.0.1", port=port, label="chatty", log_path=Path(sys.argv[2]))
sys.exit(foreground(chatty, lambda: [f"workbook: chatty is up on {{port}}"], "workbook: stopped chatty.", None))
"""


def wait_until(condition, timeout: float = TIMEOUT) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@pytest.mark.parametrize("attempt", range(10))
def test_the_up_line_comes_after_everything_the_server_printed_while_starting(attempt, foreground, tmp_path):
    """Every start-up line the server printed reaches the terminal before the runner says it is up."""
    # Followed from a thread alone, the log loses this race about a third of the time: hence ten runs.
    port = free_port()
    runner = foreground([sys.executable, "-c", RUNNER, str(port), str(tmp_path / "chatty.log")])
    assert wait_until(lambda: "is up on" in runner.output()), runner.output()
    printed = runner.output().splitlines()
    up = printed.index(f"workbook: chatty is up on {port}")
    assert printed[:up] == [f"start-up line {n}" for n in range(LINES)]


def test_a_sigterm_stops_the_foreground_run_cleanly_and_frees_the_port(foreground, tmp_path):
    """SIGTERM ends the run like Ctrl-C: the server's last words, then the stopped line, exit 0, the port free."""
    port = free_port()
    runner = foreground([sys.executable, "-c", RUNNER, str(port), str(tmp_path / "chatty.log")])
    assert wait_until(lambda: "is up on" in runner.output()), runner.output()
    runner.send_signal(signal.SIGTERM)
    assert runner.wait(TIMEOUT) == 0, runner.output()
    tail = runner.output().splitlines()[-3:]
    assert tail[-2:] == ["", "workbook: stopped chatty."] and "chatty server shut down" in tail, tail
    assert port_is_free(port)


def test_the_log_the_last_run_left_on_the_same_port_never_reaches_the_terminal(foreground, tmp_path):
    """A run on a port used before shows only its own lines, even when it works for a while before it spawns."""
    log = tmp_path / "chatty.log"
    log.write_text("a line from the last run\n" * LINES * 2)  # longer than this run's start-up lines
    port = free_port()
    runner = foreground([sys.executable, "-c", RUNNER, str(port), str(log), "0.5"])
    assert wait_until(lambda: "is up on" in runner.output()), runner.output()
    printed = runner.output().splitlines()
    assert "a line from the last run" not in printed
    assert printed[:printed.index(f"workbook: chatty is up on {port}")] == [f"start-up line {n}" for n in range(LINES)]
