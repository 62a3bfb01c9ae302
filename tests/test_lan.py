"""A room of laptops: `HOST=0.0.0.0 make step-N run` serves other machines, tried for real in network namespaces."""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import need

from workbook import WorkbookError, get_step
from workbook.classroom.lan import admit
from workbook.classroom.netns import Room, unavailable
from workbook.history_scene import ALICE
from workbook.registry import ROOT
from workbook.servers.server import TIMEOUT, free_port
from workbook.users import create_demo_users

# What a laptop does: open the page, then the websocket the page would open, with the page's own Origin.
VISIT = """
import asyncio, json, sys, urllib.error, urllib.parse, urllib.request
from workbook import client
url, origin, path = sys.argv[1:4]
try:
    with urllib.request.urlopen(url, timeout=30) as page:
        result = {"page": page.status, "body": page.read().decode()}
except urllib.error.HTTPError as refused:
    result = {"page": refused.code}
ws = f"ws://{urllib.parse.urlsplit(url).netloc}{path}"
result["handshake"] = asyncio.run(client.handshake_status(ws, origin=origin, quiet=True))
if result["handshake"] == 101:
    result["echo"] = asyncio.run(client.echo(ws, "hello from a laptop", origin=origin, quiet=True))
print(json.dumps(result))
"""

# The same from a laptop that logs in first (final/ refuses anonymous sockets); argv: url, origin, room, user, password.
VISIT_AS = """
import asyncio, json, sys, urllib.parse
import websockets
from workbook.login import login
url, origin, room, user, password = sys.argv[1:6]
headers = {"Origin": origin, "Cookie": f"sessionid={login(url, user, password)}"}
ws_url = f"ws://{urllib.parse.urlsplit(url).netloc}/ws/chat/{room}/"
async def main():
    try:
        async with websockets.connect(ws_url, additional_headers=headers) as ws:
            await ws.send(json.dumps({"message": "hello from a laptop"}))
            return {"handshake": 101, "echo": json.loads(await ws.recv())}
    except websockets.InvalidStatus as refused:
        return {"handshake": refused.response.status_code}
print(json.dumps(asyncio.run(main())))
"""

# Two laptops in one chat room: the first waits for a message, the second sends one once the first has joined.
LISTEN = """
import asyncio, sys
from workbook import client
async def main():
    async with await client.open_socket(sys.argv[1], origin=sys.argv[2], quiet=True) as ws:
        print("joined", flush=True)
        print((await client.receive(ws, quiet=True))["message"], flush=True)
asyncio.run(main())
"""


@pytest.fixture
def room():
    """A server namespace and two laptop namespaces on one bridge; all deleted afterwards, even on failure."""
    reason = unavailable()
    need(reason is None, "a network namespace room", reason or "")
    made = Room(laptops=2)
    try:
        made.create()
    except WorkbookError as refused:
        # Root in a container without CAP_SYS_ADMIN, say: `ip netns add` itself is refused.
        need(False, "a network namespace room", f"{refused} (in a container, start it with --privileged)")
    try:
        yield made
    finally:
        made.delete()


@pytest.fixture
def serve_in(foreground):
    """Start a runner command inside a namespace, as a terminal would; Ctrl-C it (or kill it) at teardown."""
    # Only what the test sets: no HOST from the caller's shell, no REDIS_URL that points outside the room.
    base = {name: value for name, value in os.environ.items() if name not in ("HOST", "PORT", "REDIS_URL")}

    def start(machine, *cmd: str, env: dict[str, str]) -> subprocess.Popen:
        return foreground(machine.command(*cmd), env=env, base_env=base)

    return start


def wait_for_line(process, pattern: str, timeout: float = TIMEOUT * 2) -> re.Match:
    """Poll a server's output until a line matches, it exits, or the deadline passes."""
    deadline = time.monotonic() + timeout
    while True:
        text = Path(process.log).read_text(errors="replace")
        match = re.search(pattern, text, re.MULTILINE)
        if match:
            return match
        assert process.poll() is None, f"the runner exited:\n{text}"
        assert time.monotonic() < deadline, f"no line matched {pattern!r} within {timeout:.0f} s:\n{text}"
        time.sleep(0.05)


def visit(laptop, url: str, origin: str | None = None, path: str = "/ws/chat/") -> dict:
    """Open a page and its websocket from inside a laptop's namespace; return what the laptop saw."""
    result = laptop.run(sys.executable, "-c", VISIT, url, origin or url.rstrip("/"), path, cwd=ROOT,
                        timeout=TIMEOUT * 2)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_a_laptop_gets_the_page_and_the_echo_of_make_step_4_run_with_host_0_0_0_0(room, serve_in):
    """`HOST=0.0.0.0 make step-4 run` prints the address to give out, and a laptop there gets page and echo."""
    port = free_port()
    began = time.monotonic()
    runner = serve_in(room.server, "make", "--no-print-directory", "step-4", "run",
                      env={"HOST": "0.0.0.0", "PORT": str(port)})
    url = f"http://{room.server.address}:{port}/"
    wait_for_line(runner, rf"^workbook: other machines on this network can join at {re.escape(url)}")
    seen = visit(room.laptops[0], url)
    elapsed = time.monotonic() - began
    assert seen["page"] == 200 and "Routing" in seen["body"]
    assert seen["echo"] == {"message": "hello from a laptop"}
    added = wait_for_line(runner, r"^workbook: the runner added (.*) to ALLOWED_HOSTS .*steps/04-routing/ is unchanged")
    assert room.server.address in added.group(1).split(", ")
    print(f"HOST=0.0.0.0 make step-4 run -> a laptop's first echo: {elapsed:.1f} s")


def test_two_laptops_share_a_room_of_step_6_served_on_the_ipv6_wildcard(room, serve_in):
    """`python -m workbook run 6 --host ::` lets one laptop's message reach another laptop in the same room."""
    port = free_port()
    runner = serve_in(room.server, sys.executable, "-m", "workbook", "run", "6", "--host", "::", "--port", str(port),
                      env={})
    url = f"http://{room.server.address}:{port}/"
    wait_for_line(runner, rf"^workbook: other machines on this network can join at {re.escape(url)}")
    socket_url = f"ws://{room.server.address}:{port}/ws/chat/lab/"
    listener = subprocess.Popen(room.laptops[0].command(sys.executable, "-c", LISTEN, socket_url, url.rstrip("/")),
                                cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert listener.stdout.readline().strip() == "joined"
        seen = visit(room.laptops[1], f"{url}?room=lab", origin=url.rstrip("/"), path="/ws/chat/lab/")
        heard, problems = listener.communicate(timeout=TIMEOUT)
    finally:
        listener.kill()
    assert seen["page"] == 200 and seen["echo"] == {"message": "hello from a laptop"}
    assert heard.strip() == "hello from a laptop", problems


def test_final_admits_its_own_lan_origin_and_still_refuses_a_foreign_one(room, serve_in):
    """final/ on 0.0.0.0 answers a logged-in laptop's page and websocket from its LAN origin, 403 from a foreign one."""
    create_demo_users(get_step("final").path)
    port = free_port()
    runner = serve_in(room.server, sys.executable, "-m", "workbook", "run", "final", "--host", "0.0.0.0",
                      "--port", str(port), env={"DJANGO_ALLOWED_HOSTS": ""})
    url = f"http://{room.server.address}:{port}/"
    wait_for_line(runner, rf"^workbook: other machines on this network can join at {re.escape(url)}")
    added = wait_for_line(runner, r"^workbook: the runner added (.*) to DJANGO_ALLOWED_HOSTS for this run only")
    assert room.server.address in added.group(1).split(", ")
    assert visit(room.laptops[0], url)["page"] == 200

    def visit_as(origin: str) -> dict:
        chat_room = f"lan-{secrets.token_hex(4)}"  # a new room: no history is replayed before the echo
        seen = room.laptops[0].run(sys.executable, "-c", VISIT_AS, url, origin, chat_room, *ALICE, cwd=ROOT,
                                   timeout=TIMEOUT * 2)
        assert seen.returncode == 0, seen.stderr
        return json.loads(seen.stdout)

    own = visit_as(url.rstrip("/"))
    assert own == {"handshake": 101, "echo": {"message": "hello from a laptop", "user": "alice"}}
    assert visit_as("http://elsewhere.test") == {"handshake": 403}


def test_without_host_a_laptop_cannot_reach_the_server(room, serve_in):
    """Plain `make step-4 run` listens on loopback only: a laptop's connection is refused, and no address is offered."""
    port = free_port()
    runner = serve_in(room.server, "make", "--no-print-directory", "step-4", "run", env={"PORT": str(port)})
    wait_for_line(runner, rf"^workbook: step 4 · Routing is up on http://127\.0\.0\.1:{port}/")
    probe = f"import socket; socket.create_connection(('{room.server.address}', {port}), timeout=10)"
    refused = room.laptops[0].run(sys.executable, "-c", probe, timeout=TIMEOUT)
    assert "ConnectionRefusedError" in refused.stderr
    assert "other machines" not in Path(runner.log).read_text()


def test_the_runner_finds_its_address_by_interface_and_by_route(room):
    """Inside the room, the server sees its bridge address; a laptop with a default route sees its own address."""
    show = "from workbook.classroom import lan; print(lan.interface_addresses(), lan.outbound_address())"
    on_server = room.server.run(sys.executable, "-c", show, cwd=ROOT, timeout=TIMEOUT)
    assert on_server.stdout.split() == [f"['{room.server.address}']", "None"], on_server.stderr
    laptop = room.laptops[0]
    laptop.ip("route", "add", "default", "via", room.server.address)
    on_laptop = laptop.run(sys.executable, "-c", show, cwd=ROOT, timeout=TIMEOUT)
    assert on_laptop.stdout.split() == [f"['{laptop.address}']", laptop.address], on_laptop.stderr


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "localhost"])
def test_a_loopback_host_admits_nobody_else(host):
    """On a loopback host the runner adds no host and serves the step on its own settings."""
    assert admit(host, get_step(4).path) is None


def test_final_gets_the_room_in_django_allowed_hosts_after_the_learners_own(monkeypatch):
    """For final/ the runner extends DJANGO_ALLOWED_HOSTS (a learner's value first) instead of the overlay."""
    monkeypatch.setenv("DJANGO_ALLOWED_HOSTS", "chat.example.com")
    admitted = admit("192.0.2.7", get_step("final").path)
    assert admitted.env == {"DJANGO_ALLOWED_HOSTS": "chat.example.com,192.0.2.7"}
    assert admit("192.0.2.7", get_step(4).path).env["WORKBOOK_EXTRA_HOSTS"] == "192.0.2.7"
