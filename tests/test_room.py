"""`make room`: one server on Redis for the class; laptops in network namespaces log in and share a room."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
import time

import pytest
from conftest import need
from test_lan import room, serve_in, wait_for_line  # noqa: F401 - fixtures shared with the LAN tests

from workbook.classroom.room import handout
from workbook.registry import ROOT
from workbook.servers.server import TIMEOUT, free_port


def need_redis() -> None:
    need(shutil.which("redis-server") is not None, "redis-server", "install it (e.g. apt install redis-server)")


def open_room(room, serve_in, *goals: str):  # noqa: F811 - the fixtures come in as arguments
    """Start `make [GOALS] room` in the server's namespace; return the runner and the one-liner it gives out."""
    port = free_port()
    began = time.monotonic()
    runner = serve_in(room.server, "make", "--no-print-directory", *goals, "room", env={"PORT": str(port)})
    wait_for_line(runner, r"^workbook: the room was ready", timeout=TIMEOUT * 4)
    print(f"make {' '.join(goals)} room -> ready in {time.monotonic() - began:.1f} s")
    site = f"{room.server.address}:{port}"
    wait_for_line(runner, rf"^  page       http://{re.escape(site)}/\?room=class$")
    wait_for_line(runner, rf"^  websocket  ws://{re.escape(site)}/ws/chat/class/$")
    client = wait_for_line(runner, r"^  Python     (python -m workbook chat .*)$").group(1)
    return runner, shlex.split(client)


def laptop_client(laptop, argv: list[str], *extra: str) -> subprocess.Popen:
    """Run the one-liner `make room` gave out, from inside a laptop's namespace, with the venv's Python."""
    return subprocess.Popen(laptop.command(sys.executable, *argv[1:], *extra), cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)


def test_two_laptops_logged_in_to_make_step_9_room_hear_each_other(room, serve_in):  # noqa: F811
    """`make step-9 room`: each laptop logs in over HTTP as its own learner; one's message reaches the other."""
    need_redis()
    runner, client = open_room(room, serve_in, "step-9")
    assert "--login" in client and client[-1].startswith("learner1:")
    password = client[-1].partition(":")[2]
    listener = laptop_client(room.laptops[0], client)
    try:
        assert listener.stdout.readline().strip() == f"joined {client[4]} as learner1"
        sender = laptop_client(room.laptops[1], client[:-1] + [f"learner2:{password}"], "--send", "hi from laptop 2")
        said, problems = sender.communicate(timeout=TIMEOUT)
        assert sender.returncode == 0, problems
        assert said.splitlines()[-1] == "learner2: hi from laptop 2"
        assert listener.stdout.readline().strip() == "learner2: hi from laptop 2"
    finally:
        listener.kill()
        listener.communicate()
    anonymous = laptop_client(room.laptops[1], client[:-2], "--send", "who am I")
    _, refused = anonymous.communicate(timeout=TIMEOUT)
    assert anonymous.returncode == 1
    assert refused.strip() == "workbook: the room refused the socket with HTTP 403 (log in: --login USER:PASSWORD)"
    assert "Traceback" not in runner.output()


def test_make_room_serves_final_on_redis_to_a_laptop_with_the_client_it_gives_out(room, serve_in):  # noqa: F811
    """`make room` serves final/ on its own Redis, and the one-liner it prints works from a laptop as printed."""
    need_redis()
    runner, client = open_room(room, serve_in)
    assert re.search(r"^channel layer: RedisChannelLayer at 127\.0\.0\.1:\d+", runner.output(), re.MULTILINE)
    sender = laptop_client(room.laptops[0], client, "--send", "hello, class")
    said, problems = sender.communicate(timeout=TIMEOUT)
    assert sender.returncode == 0, problems
    assert said.splitlines()[-1].endswith("hello, class")


def test_the_handout_names_every_address_and_the_login_only_when_the_project_has_one():
    """Two addresses give two pages and sockets; the login line and --login appear only for a project with logins."""
    lines = handout(["192.0.2.7", "198.51.100.3"], 8000, "class", (["learner1", "learner2"], "s3cret"))
    assert "  page       http://198.51.100.3:8000/?room=class" in lines
    assert "  log in     http://192.0.2.7:8000/accounts/login/ as learner1 … learner2, password s3cret" in lines
    assert "  Python     python -m workbook chat ws://192.0.2.7:8000/ws/chat/class/ --login learner1:s3cret" in lines
    plain = handout(["192.0.2.7"], 8000, "class", None)
    assert plain[-1] == "  Python     python -m workbook chat ws://192.0.2.7:8000/ws/chat/class/"
    assert not any("log in" in line for line in plain)
    assert handout([], 8000, "class", None)[0].startswith("workbook: this machine has no network address")


def test_a_step_without_redis_is_refused_by_the_room_in_one_line():
    """`python -m workbook room 6` says the room needs Redis, and which projects have it."""
    from conftest import run_python

    result = run_python("-m", "workbook", "room", "6")
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "workbook: step 6 · Groups keeps its groups in one process: the room needs Redis, "
        "so run final or a step from 7 on (make room, or python -m workbook room 9)")


@pytest.mark.parametrize("frame, shown", [
    ('{"message": "hi", "user": "learner2"}', "learner2: hi"),
    ('{"message": "hi"}', "hi"),
    ('{"error": "message too long"}', "(the server: message too long)"),
    ("plain text", "plain text"),
])
def test_the_chat_client_prints_each_frame_as_a_line(frame, shown):
    """A frame with a user reads `user: message`; an error frame is marked; anything else is printed as is."""
    from workbook.classroom.chat import _line

    assert _line(frame) == shown
