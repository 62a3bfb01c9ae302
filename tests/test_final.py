"""The final project: step 11 plus the hardening, tested against the real daphne and uvicorn servers."""

from __future__ import annotations

import asyncio
import http.client
import json
import re
import resource
import secrets
import shutil
import subprocess
import sys
import time
import urllib.request

import pytest
from conftest import STARTED_GROUPS, hears_only_its_own, run_python
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from workbook import Server, client, free_port, get_step
from workbook.diffs import changed_files
from workbook.servers.server import TIMEOUT

FINAL = get_step("final")
PRODUCTION = {
    "DJANGO_DEBUG": "false",
    "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
    "DJANGO_ALLOWED_HOSTS": "chat.example.com",
}
CONSUMER = (FINAL.path / "chat/consumers.py").read_text()
LIMIT = int(re.search(r"^MAX_MESSAGE_LENGTH = (\d+)", CONSUMER, re.M).group(1))
RATE_LIMITED = int(re.search(r"^RATE_LIMITED = (\d+)", CONSUMER, re.M).group(1))
# How many frames of one socket daphne holds for its consumer before it stops reading (mychannels/backpressure.py).
MAX_QUEUED = int(re.search(r"^MAX_QUEUED = (\d+)", (FINAL.path / "mychannels/backpressure.py").read_text(), re.M)[1])
# Sessions as django.contrib.auth.login() leaves them, made in the server's own database and settings; prints
# {name: session key} as its last line. With migrate=True it first migrates that database.
SESSIONS = """
import json
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model
from django.contrib.sessions.backends.db import SessionStore
from django.core.management import call_command
from django.db import connections
if {migrate}:
    call_command('migrate', interactive=False, verbosity=0)
keys = {{}}
for name in {names!r}:
    user, _ = get_user_model().objects.get_or_create(username=name)
    session = SessionStore()
    session.update({{SESSION_KEY: str(user.pk), BACKEND_SESSION_KEY: 'django.contrib.auth.backends.ModelBackend',
                    HASH_SESSION_KEY: user.get_session_auth_hash()}})
    session.create()
    keys[name] = session.session_key
connections.close_all()  # the last connection to a WAL database folds the log into the file: a copy is whole
print(json.dumps(keys))
"""
# A client that sends frames as fast as its socket takes them, until the server closes it or the deadline passes;
# it prints "joined", then the close code (None: never closed).
FLOODER = """
import asyncio, json, sys, time
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

async def main(url, headers, seconds):
    async with connect(url, additional_headers=json.loads(headers), max_queue=None) as ws:
        print("joined", flush=True)
        deadline = time.monotonic() + float(seconds)
        try:
            while time.monotonic() < deadline:
                for _ in range(50):
                    await ws.send('{"message": "flood"}')
                await asyncio.sleep(0)
        except ConnectionClosed:
            pass
    print(ws.close_code if ws.close_code else None, flush=True)

asyncio.run(main(*sys.argv[1:]))
"""
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


# The first database made in this process (migrated, alice, bob and carol logged in), kept untouched: every test
# starts from a copy, so one Django start migrates and logs in for the whole module.
SEED: dict = {}
USERS = ("alice", "bob", "carol")


def fresh_database(directory) -> tuple[dict[str, str], dict[str, str]]:
    """Give `directory` a copy of the seed database; return the env pointing final's servers at it, and the sessions."""
    if not SEED:
        seed = directory / "seed.sqlite3"
        SEED.update(path=seed, sessions=sessions_in({"DJANGO_SQLITE_PATH": str(seed)}, *USERS, migrate=True))
    shutil.copyfile(SEED["path"], directory / "db.sqlite3")
    return {"DJANGO_SQLITE_PATH": str(directory / "db.sqlite3"), "WORKBOOK_MIGRATE": "0"}, dict(SEED["sessions"])


def sessions_in(env: dict[str, str], *names: str, migrate: bool = False) -> dict[str, str]:
    """Log `names` in (creating the users) in the database and settings of `env`; return their session keys."""
    script = SESSIONS.format(names=names, migrate=migrate)
    result = run_python("manage.py", "shell", "-c", script, cwd=FINAL.path, env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def final_server(tmp_path_factory):
    """Return final under `how`, started once per module on a database of its own, so that no room has history."""
    started: dict[str, Server] = {}

    def get(how: str) -> Server:
        server = started.get(how)
        if server is None or not server.running:
            env, sessions = fresh_database(tmp_path_factory.mktemp(f"final-{how}"))
            server = started[how] = Server(FINAL, how=how, env=env)
            server.start()
            STARTED_GROUPS.append(server.pid)
            server.sessions = sessions
        return server

    yield get
    for server in started.values():
        server.stop()


def origin(server) -> str:
    """The Origin a browser sends for the page this server serves."""
    return server.http_url.rstrip("/")


def opening(server, path: str = "/ws/chat/", user: str | None = "alice", sent_origin: str | None = "own", **options):
    """Open a socket as a browser would: the page's origin (or `sent_origin`), and `user`'s session cookie."""
    headers = {}
    if sent_origin:
        headers["Origin"] = origin(server) if sent_origin == "own" else sent_origin
    if user:
        headers["Cookie"] = f"sessionid={server.sessions[user]}"
    return connect(server.ws_url(path), additional_headers=headers, open_timeout=TIMEOUT, **options)


async def join(server, room: str = "", user: str = "alice", **options):
    return await opening(server, f"/ws/chat/{room}/" if room else "/ws/chat/", user, **options)


async def handshake_status(server, **options) -> int:
    """Try a handshake; return 101 when accepted, else the HTTP status it was refused with."""
    try:
        async with opening(server, **options):
            return 101
    except InvalidStatus as refused:
        return refused.response.status_code


def page(url: str, headers: dict | None = None) -> str:
    request = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200
        return response.read().decode()


# --- the snapshot --------------------------------------------------------------------------------------------


def test_final_differs_from_step_11_only_in_the_files_it_declares():
    """final/ is step 11 plus the hardening: the changed files are exactly steps.toml's [final] list."""
    assert FINAL.base == 11
    assert changed_files(get_step(11), FINAL) == sorted(FINAL.changed)


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


@pytest.mark.parametrize(("sent", "user", "status"), [
    pytest.param("own", "alice", 101, id="own-origin"),
    pytest.param("own", None, 403, id="own-origin-anonymous"),
    pytest.param("http://evil.example", "alice", 403, id="foreign-origin"),
    pytest.param(None, "alice", 403, id="no-origin"),
])
async def test_only_a_logged_in_page_of_this_site_may_open_a_socket(how, sent, user, status, final_server):
    """The validator answers 403 to another origin or none, and the consumer to a socket with no logged-in user."""
    assert await handshake_status(final_server(how), sent_origin=sent, user=user) == status


async def test_in_production_the_origin_must_be_an_allowed_host(serve, tmp_path):
    """With DJANGO_ALLOWED_HOSTS=chat.example.com, that origin is accepted and the loopback one refused."""
    # The seed's sessions are signed with the development SECRET_KEY: production's own key needs its own session.
    env = {**PRODUCTION, **fresh_database(tmp_path)[0]}
    server = serve(FINAL, how="daphne", env=env)
    server.sessions = sessions_in(env, "alice")
    assert await handshake_status(server, sent_origin="https://chat.example.com") == 101
    assert await handshake_status(server) == 403
    # The page is served to the allowed host over (proxied) https; plain http is redirected to https.
    body = page(server.http_url, {"Host": "chat.example.com", "X-Forwarded-Proto": "https"})
    assert 'id="chat-form"' in body
    connection = http.client.HTTPConnection(server.host, server.port, timeout=10)
    connection.request("GET", "/", headers={"Host": "chat.example.com"})
    response = connection.getresponse()
    connection.close()
    assert (response.status, response.getheader("Location")) == (301, "https://chat.example.com/")


# --- rooms and bad input -------------------------------------------------------------------------------------


async def test_a_message_reaches_its_room_the_sender_included_and_no_other_room(how, final_server):
    """Two clients of one room hear a message; a client of another room does not."""
    server = final_server(how)
    async with await join(server, "kitchen") as alice, await join(server, "kitchen", "bob") as bob, \
            await join(server, "garden", "carol") as carol:
        await client.send_json(alice, {"message": "soup is ready", "user": "mallory"}, quiet=True)
        assert await client.receive(alice, quiet=True) == {"message": "soup is ready", "user": "alice"}
        assert await client.receive(bob, quiet=True) == {"message": "soup is ready", "user": "alice"}
        assert await hears_only_its_own(carol)


async def test_ws_chat_without_a_room_is_the_lobby(how, final_server):
    """/ws/chat/ is the room called lobby."""
    server = final_server(how)
    async with await join(server) as plain, await join(server, "lobby", "bob") as named:
        await client.send_json(plain, {"message": "hello lobby"}, quiet=True)
        assert await client.receive(named, quiet=True) == {"message": "hello lobby", "user": "alice"}


@pytest.mark.parametrize("case", BAD_FRAMES)
async def test_bad_input_gets_an_error_frame_and_the_socket_survives(how, case, final_server):
    """The sender gets {"error": ...}, the room hears nothing, and the same socket then chats normally."""
    server = final_server(how)
    frame, expected = BAD_FRAMES[case]
    room = f"bad-{case}"
    async with await join(server, room) as sender, await join(server, room, "bob") as listener:
        await client.send_text(sender, frame, quiet=True)
        reply = await client.receive(sender, quiet=True)
        assert list(reply) == ["error"] and expected in reply["error"], reply
        # The listener's next frame is the one sent after the bad frame: the bad one never reached the room.
        await client.send_json(sender, {"message": "still here"}, quiet=True)
        assert await client.receive(listener, quiet=True) == {"message": "still here", "user": "alice"}
        assert await client.receive(sender, quiet=True) == {"message": "still here", "user": "alice"}


async def test_a_message_of_exactly_the_limit_is_delivered(how, final_server):
    """A "message" of MAX_MESSAGE_LENGTH characters is not over the limit."""
    server = final_server(how)
    async with await join(server, "longest") as ws:
        await client.send_json(ws, {"message": "é" * LIMIT}, quiet=True)
        assert await client.receive(ws, quiet=True) == {"message": "é" * LIMIT, "user": "alice"}


def test_the_page_keeps_the_client_and_shows_error_frames(how, final_server):
    """The page keeps step 05's ids and global chatSocket, and prints error frames in the log."""
    body = page(final_server(how).http_url)
    for element in ("room-form", "room-input", "state", "log", "chat-form", "message-input", "send-button"):
        assert f'id="{element}"' in body
    assert "const chatSocket = new WebSocket(wsScheme + location.host + '/ws/chat/'" in body
    assert "data.error" in body


async def test_a_newcomer_hears_the_rooms_history_with_the_senders_names(how, final_server):
    """Messages are saved: whoever joins later gets them first, oldest first, then the room goes on."""
    server = final_server(how)
    async with await join(server, "history") as alice:
        for text in ("one", "two"):
            await client.send_json(alice, {"message": text}, quiet=True)
            assert (await client.receive(alice, quiet=True))["message"] == text
    async with await join(server, "history", "bob") as bob:
        assert [await client.receive(bob, quiet=True) for _ in range(2)] == [
            {"message": "one", "user": "alice"}, {"message": "two", "user": "alice"}]
        await client.send_json(bob, {"message": "three"}, quiet=True)
        assert await client.receive(bob, quiet=True) == {"message": "three", "user": "bob"}


async def test_a_socket_that_floods_is_closed_and_its_room_carries_on(how, final_server):
    """Frames past the burst close the sender with RATE_LIMITED; the room heard at most the burst, and still chats."""
    server = final_server(how)
    burst = 10  # CHAT_MESSAGE_BURST's default in settings.py
    async with await join(server, "flooded") as flooder, await join(server, "flooded", "bob") as listener:
        for n in range(3 * burst):
            await flooder.send(json.dumps({"message": f"spam {n}"}))
        assert await client.wait_closed(flooder, quiet=True) == RATE_LIMITED
        await client.send_json(listener, {"message": "still here"}, quiet=True)
        heard = []
        while (frame := await client.receive(listener, quiet=True))["user"] == "alice":
            heard.append(frame["message"])
        # A token may come back while the burst is read: one frame more than the burst can get through.
        assert heard == [f"spam {n}" for n in range(len(heard))] and burst <= len(heard) <= burst + 1, heard
        assert frame == {"message": "still here", "user": "bob"}


async def test_a_client_flooding_as_fast_as_it_can_is_closed_while_its_room_chats_on(how, final_server):
    """A client sending frames without pause is closed with RATE_LIMITED; another client's messages all come back."""
    server = final_server(how)
    headers = {"Origin": origin(server), "Cookie": f"sessionid={server.sessions['alice']}"}
    url = server.ws_url("/ws/chat/torrent/")
    async with await join(server, "torrent", "bob") as talker:
        # In a process of its own, like a client on another machine: this test's loop could not send as fast.
        flooder = await asyncio.create_subprocess_exec(
            sys.executable, "-c", FLOODER, url, json.dumps(headers), str(TIMEOUT), stdout=asyncio.subprocess.PIPE)
        try:
            assert (await asyncio.wait_for(flooder.stdout.readline(), TIMEOUT)).strip() == b"joined"
            for text in [f"talk {n}" for n in range(5)]:
                await talker.send(json.dumps({"message": text}))
                # The burst the limit lets through may come first; then the talker's own message, in order.
                while (frame := await client.receive(talker, quiet=True)) == {"message": "flood", "user": "alice"}:
                    pass
                assert frame == {"message": text, "user": "bob"}
            closed, _ = await asyncio.wait_for(flooder.communicate(), 2 * TIMEOUT)
        finally:
            if flooder.returncode is None:
                flooder.kill()
    assert closed.decode().split() == [str(RATE_LIMITED)]


async def test_with_the_limit_off_a_burst_longer_than_the_read_queue_arrives_whole_and_in_order(serve, tmp_path):
    """Under daphne, a burst past MAX_QUEUED frames pauses reading; it resumes, and every frame reaches the room."""
    database, sessions = fresh_database(tmp_path)
    server = serve(FINAL, how="daphne", env={"CHAT_MESSAGES_PER_SECOND": "0", **database})
    server.sessions = sessions
    # The sender hears its own frames too and never reads them: unbounded, its queue never stops the client reading,
    # so the server's answer to its close arrives at once (a full queue of 16 left that to the 10 s close timeout).
    async with await join(server, "burst", max_queue=None) as sender, await join(server, "burst", "bob") as listener:
        # Half a queue more than it holds: the frames past MAX_QUEUED are read only if reading resumes.
        said = [f"line {n}" for n in range(MAX_QUEUED + MAX_QUEUED // 2)]
        for text in said:
            await sender.send(json.dumps({"message": text}))
        heard = [(await client.receive(listener, quiet=True))["message"]]
        # Sent once the server has read the burst (and paused): it arrives only if reading resumes.
        await sender.send(json.dumps({"message": "the end"}))
        heard += [(await client.receive(listener, quiet=True))["message"] for _ in said]
        assert heard == [*said, "the end"]


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
async def test_two_final_servers_share_rooms_through_redis(redis_servers, serve, tmp_path):
    """A client of the daphne process reaches a client of the uvicorn process through one Redis and one database."""
    database, sessions = fresh_database(tmp_path)
    env = {"REDIS_URL": redis_servers().url, **database}
    a, b = serve(FINAL, how="daphne", env=env), serve(FINAL, how="uvicorn", env=env)
    a.sessions = b.sessions = sessions
    async with await join(a, "shared") as on_a, await join(b, "shared", "bob") as on_b:
        await client.send_text(on_b, "not json", quiet=True)
        assert "error" in await client.receive(on_b, quiet=True)
        await client.send_json(on_b, {"message": "from B"}, quiet=True)
        assert await client.receive(on_a, quiet=True) == {"message": "from B", "user": "bob"}
        assert await client.receive(on_b, quiet=True) == {"message": "from B", "user": "bob"}
    # Saved by one process, replayed by the other.
    async with await join(a, "shared", "bob") as later:
        assert await client.receive(later, quiet=True) == {"message": "from B", "user": "bob"}


@pytest.mark.redis
async def test_a_surge_of_300_handshakes_on_redis_is_all_accepted(redis_servers, serve, tmp_path):
    """300 logged-in clients connecting at once to one process on the Redis layer are all accepted (no HTTP 500)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 1024:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(1024, hard), hard))
    database, sessions = fresh_database(tmp_path)
    server = serve(FINAL, how="daphne", env={"REDIS_URL": redis_servers().url, **database})
    server.sessions = sessions
    results = await asyncio.gather(
        *(handshake_status(server, path=f"/ws/chat/surge-{i % 30}/") for i in range(300)), return_exceptions=True,
    )
    assert results == [101] * 300, {repr(r) for r in results if r != 101}
    assert "MaxConnectionsError" not in server.log_text()


@pytest.mark.redis
async def test_redis_going_away_sends_an_error_frame_and_the_server_recovers(redis_servers, serve, tmp_path):
    """With Redis stopped, an open socket gets an error frame and a 1011 close; once it is back, rooms work again."""
    redis = redis_servers()
    database, sessions = fresh_database(tmp_path)
    server = serve(FINAL, how="daphne", env={"REDIS_URL": redis.url, **database})
    server.sessions = sessions
    ws = await join(server, "outage")
    redis.stop()
    error = await client.receive(ws, quiet=True)
    assert error["error"].startswith("channel layer unavailable: "), error
    assert await client.wait_closed(ws, quiet=True) == 1011
    assert server.running and 'id="chat-form"' in page(server.http_url)

    redis_servers(port=redis.port)
    async with await join(server, "outage") as again:
        await client.send_json(again, {"message": "back"}, quiet=True)
        assert await client.receive(again, quiet=True) == {"message": "back", "user": "alice"}
