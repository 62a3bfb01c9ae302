"""The final project: step 07 plus the hardening, tested against the real daphne and uvicorn servers."""

from __future__ import annotations

import asyncio
import http.client
import json
import re
import resource
import secrets
import subprocess
import sys
import time
import urllib.request

import pytest
from conftest import STARTED_GROUPS, hears_only_its_own, run_python

from workbook import client, free_port, get_step
from workbook.diffs import changed_files
from workbook.server import TIMEOUT

FINAL = get_step("final")
PRODUCTION = {
    "DJANGO_DEBUG": "false",
    "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
    "DJANGO_ALLOWED_HOSTS": "chat.example.com",
}
LIMIT = int(re.search(r"^MAX_MESSAGE_LENGTH = (\d+)", (FINAL.path / "chat/consumers.py").read_text(), re.M).group(1))
# Each bad frame, and a word its error frame must contain.
BAD_FRAMES = {
    "non-json": ("hello", "not JSON"),
    "json-list": ('["message"]', "JSON object"),
    "json-number": ("42", "JSON object"),
    "missing-message": ('{"text": "hi"}', "missing"),
    "null-message": ('{"message": null}', "null"),
    "number-message": ('{"message": 7}', "must be a string"),
    "object-message": ('{"message": {"html": "<b>"}}', "must be a string"),
    "empty-message": ('{"message": ""}', "empty"),
    "blank-message": ('{"message": "  \\n "}', "empty"),
    "over-the-limit": (json.dumps({"message": "x" * (LIMIT + 1)}), f"limit is {LIMIT}"),
    "binary-frame": (b'{"message": "hi"}', "binary"),
}


@pytest.fixture(params=["daphne", "uvicorn"])
def how(request) -> str:
    """Each real-server test runs under the daphne CLI (the default) and under uvicorn."""
    return request.param


def origin(server) -> str:
    """The Origin a browser sends for the page this server serves."""
    return server.http_url.rstrip("/")


async def join(server, room: str = "", **options):
    path = f"/ws/chat/{room}/" if room else "/ws/chat/"
    return await client.open_socket(server.ws_url(path), origin=origin(server), quiet=True, **options)


def page(url: str, headers: dict | None = None) -> str:
    request = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200
        return response.read().decode()


# --- the snapshot --------------------------------------------------------------------------------------------


def test_final_differs_from_step_07_only_in_the_files_it_declares():
    """final/ is step 07 plus the hardening: the changed files are exactly steps.toml's [final] list."""
    assert changed_files(get_step(7), FINAL) == sorted(FINAL.changed)


def test_the_final_page_walks_through_every_changed_file_and_has_a_diagram():
    """FINAL.md has a bullet per changed file, and a Mermaid diagram."""
    text = (FINAL.path / "FINAL.md").read_text(encoding="utf-8")
    section = text.split("## What changed", 1)[1].split("\n## ", 1)[0]
    named = set(re.findall(r"^- `([^`]+)`", section, re.M))
    assert named == set(FINAL.changed)
    assert "```mermaid" in text


# --- Django's own tests and settings -----------------------------------------------------------------------


def test_manage_py_test_passes_inside_final():
    """`python manage.py test` in final/ runs the project's WebsocketCommunicator tests, and they pass."""
    result = run_python("manage.py", "test", "--noinput", cwd=FINAL.path, env={"REDIS_URL": ""})
    assert result.returncode == 0, result.stderr
    assert re.search(r"Ran [1-9]\d* tests?", result.stderr) and "OK" in result.stderr


def test_check_deploy_is_clean_with_production_settings():
    """Under a production environment, `manage.py check --deploy` reports no issue, not even a warning."""
    result = run_python("manage.py", "check", "--deploy", "--fail-level", "DEBUG", cwd=FINAL.path, env=PRODUCTION)
    assert result.returncode == 0, result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout


def test_development_defaults_need_no_environment():
    """With no DJANGO_* variables set, the project checks clean with DEBUG on."""
    env = {"DJANGO_DEBUG": "", "DJANGO_SECRET_KEY": "", "DJANGO_ALLOWED_HOSTS": ""}
    code = "from django.conf import settings; print(settings.DEBUG, settings.ALLOWED_HOSTS)"
    result = run_python("-c", f"import django; django.setup(); {code}", cwd=FINAL.path,
                        env={**env, "DJANGO_SETTINGS_MODULE": "mychannels.settings"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "True ['localhost', '127.0.0.1', '[::1]']"


def test_production_without_a_secret_key_refuses_to_start():
    """DJANGO_DEBUG=false without DJANGO_SECRET_KEY stops with one line saying what to set."""
    env = {**PRODUCTION, "DJANGO_SECRET_KEY": ""}
    result = run_python("manage.py", "check", cwd=FINAL.path, env=env)
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY is unset" in result.stderr.strip().splitlines()[-1]


# --- the origin check ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("sent", "status"), [
    pytest.param("own", 101, id="own-origin"),
    pytest.param("http://evil.example", 403, id="foreign-origin"),
    pytest.param(None, 403, id="no-origin"),
])
async def test_only_the_pages_own_origin_may_open_a_socket(how, sent, status, shared_server):
    """AllowedHostsOriginValidator accepts the page's origin and answers 403 to another one, or to none."""
    server = shared_server(FINAL, how)
    sent = origin(server) if sent == "own" else sent
    assert await client.handshake_status(server.ws_url(), origin=sent, quiet=True) == status


async def test_in_production_the_origin_must_be_an_allowed_host(serve):
    """With DJANGO_ALLOWED_HOSTS=chat.example.com, that origin is accepted and the loopback one refused."""
    server = serve(FINAL, how="daphne", env=PRODUCTION)
    assert await client.handshake_status(server.ws_url(), origin="https://chat.example.com", quiet=True) == 101
    assert await client.handshake_status(server.ws_url(), origin=origin(server), quiet=True) == 403
    # The page is served to the allowed host over (proxied) https; plain http is redirected to https.
    body = page(server.http_url, {"Host": "chat.example.com", "X-Forwarded-Proto": "https"})
    assert 'id="chat-form"' in body
    connection = http.client.HTTPConnection(server.host, server.port, timeout=10)
    connection.request("GET", "/", headers={"Host": "chat.example.com"})
    response = connection.getresponse()
    connection.close()
    assert (response.status, response.getheader("Location")) == (301, "https://chat.example.com/")


# --- rooms and bad input -------------------------------------------------------------------------------------


async def test_a_message_reaches_its_room_the_sender_included_and_no_other_room(how, shared_server):
    """Two clients of one room hear a message; a client of another room does not."""
    server = shared_server(FINAL, how)
    async with await join(server, "kitchen") as alice, await join(server, "kitchen") as bob, \
            await join(server, "garden") as carol:
        await client.send_json(alice, {"message": "soup is ready"}, quiet=True)
        assert await client.receive(alice, quiet=True) == {"message": "soup is ready"}
        assert await client.receive(bob, quiet=True) == {"message": "soup is ready"}
        assert await hears_only_its_own(carol)


async def test_ws_chat_without_a_room_is_the_lobby(how, shared_server):
    """/ws/chat/ is the room called lobby."""
    server = shared_server(FINAL, how)
    async with await join(server) as plain, await join(server, "lobby") as named:
        await client.send_json(plain, {"message": "hello lobby"}, quiet=True)
        assert await client.receive(named, quiet=True) == {"message": "hello lobby"}


@pytest.mark.parametrize("case", BAD_FRAMES)
async def test_bad_input_gets_an_error_frame_and_the_socket_survives(how, case, shared_server):
    """The sender gets {"error": ...}, the room hears nothing, and the same socket then chats normally."""
    server = shared_server(FINAL, how)
    frame, expected = BAD_FRAMES[case]
    room = f"bad-{case}"
    async with await join(server, room) as sender, await join(server, room) as listener:
        await client.send_text(sender, frame, quiet=True)
        reply = await client.receive(sender, quiet=True)
        assert list(reply) == ["error"] and expected in reply["error"], reply
        # The listener's next frame is the one sent after the bad frame: the bad one never reached the room.
        await client.send_json(sender, {"message": "still here"}, quiet=True)
        assert await client.receive(listener, quiet=True) == {"message": "still here"}
        assert await client.receive(sender, quiet=True) == {"message": "still here"}


async def test_a_message_of_exactly_the_limit_is_delivered(how, shared_server):
    """A "message" of MAX_MESSAGE_LENGTH characters is not over the limit."""
    server = shared_server(FINAL, how)
    async with await join(server, "longest") as ws:
        await client.send_json(ws, {"message": "é" * LIMIT}, quiet=True)
        assert await client.receive(ws, quiet=True) == {"message": "é" * LIMIT}


def test_the_page_keeps_the_client_and_shows_error_frames(how, shared_server):
    """The page keeps step 05's ids and global chatSocket, and prints error frames in the log."""
    body = page(shared_server(FINAL, how).http_url)
    for element in ("room-form", "room-input", "state", "log", "chat-form", "message-input", "send-button"):
        assert f'id="{element}"' in body
    assert "const chatSocket = new WebSocket(wsScheme + location.host + '/ws/chat/'" in body
    assert "data.error" in body


# --- how it is run -------------------------------------------------------------------------------------------


def test_workbook_run_final_serves_it_with_the_daphne_cli():
    """`python -m workbook run final` (what `make final run` calls) starts the daphne CLI, not runserver."""
    port = free_port()
    log = FINAL.path.parent / ".workbook" / "logs" / f"test-run-final-{port}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w+") as out:
        process = subprocess.Popen([sys.executable, "-m", "workbook", "run", "final", "--port", str(port)],
                                   cwd=FINAL.path.parent, stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)
        STARTED_GROUPS.append(process.pid)
        try:
            deadline = time.monotonic() + TIMEOUT
            listening = re.compile(r"Listening on TCP address 127\.0\.0\.1:\d+")
            # The runner copies the server's output with a short delay: wait for both lines.
            while not ("is up on" in log.read_text() and listening.search(log.read_text())):
                assert process.poll() is None, log.read_text()
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.1)
            text = log.read_text()
            assert f"the final project is up on http://127.0.0.1:{port}/" in text
            assert re.search(r"Listening on TCP address 127\.0\.0\.1:\d+", text)
            assert "runserver" not in text and "development server" not in text
        finally:
            process.terminate()
            process.wait(TIMEOUT)


# --- the Redis layer -----------------------------------------------------------------------------------------


@pytest.mark.redis
async def test_two_final_servers_share_rooms_through_redis(redis_servers, serve):
    """A client of the daphne process reaches a client of the uvicorn process through one Redis."""
    env = {"REDIS_URL": redis_servers().url}
    a, b = serve(FINAL, how="daphne", env=env), serve(FINAL, how="uvicorn", env=env)
    async with await join(a, "shared") as on_a, await join(b, "shared") as on_b:
        await client.send_text(on_b, "not json", quiet=True)
        assert "error" in await client.receive(on_b, quiet=True)
        await client.send_json(on_b, {"message": "from B"}, quiet=True)
        assert await client.receive(on_a, quiet=True) == {"message": "from B"}
        assert await client.receive(on_b, quiet=True) == {"message": "from B"}


@pytest.mark.redis
async def test_a_surge_of_300_handshakes_on_redis_is_all_accepted(redis_servers, serve):
    """300 clients connecting at once to one process on the Redis layer are all accepted (no HTTP 500)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 1024:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(1024, hard), hard))
    server = serve(FINAL, how="daphne", env={"REDIS_URL": redis_servers().url})
    results = await asyncio.gather(
        *(client.handshake_status(server.ws_url(f"/ws/chat/surge-{i % 30}/"), origin=origin(server), quiet=True)
          for i in range(300)),
        return_exceptions=True,
    )
    assert results == [101] * 300, {repr(r) for r in results if r != 101}
    assert "MaxConnectionsError" not in server.log_text()


@pytest.mark.redis
async def test_redis_going_away_sends_an_error_frame_and_the_server_recovers(redis_servers, serve):
    """With Redis stopped, an open socket gets an error frame and a 1011 close; once it is back, rooms work again."""
    redis = redis_servers()
    server = serve(FINAL, how="daphne", env={"REDIS_URL": redis.url})
    ws = await join(server, "outage")
    redis.stop()
    error = await client.receive(ws, quiet=True)
    assert error["error"].startswith("channel layer unavailable: "), error
    assert await client.wait_closed(ws, quiet=True) == 1011
    assert server.running and 'id="chat-form"' in page(server.http_url)

    redis_servers(port=redis.port)
    async with await join(server, "outage") as again:
        await client.send_json(again, {"message": "back"}, quiet=True)
        assert await client.receive(again, quiet=True) == {"message": "back"}
