"""Steps 06 to 08: rooms through a channel layer, in memory and then shared by several servers through Redis."""

from __future__ import annotations

import asyncio
import json
import urllib.request

import pytest
from conftest import HOWS, STARTED_GROUPS, hears_only_its_own, need, run_python, steps, stop_behind

from workbook import Server, client, free_port, get_step
from workbook.communicator import drive

# How long a client must stay silent to count as "got nothing": messages here arrive within milliseconds.
QUIET = 1.5
GROUPS = get_step(6)
REDIS = get_step(7)
# Tests of step 6 alone share a worker with test_stages.py's step 6 tests, and so its servers.
ON_STEP_6 = pytest.mark.xdist_group(f"server-{GROUPS.id}")


@pytest.fixture(params=HOWS)
def how(request) -> str:
    """Each real-server test runs under `manage.py runserver` and under the `daphne` CLI."""
    return request.param


def page(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.status == 200
        return response.read().decode()


async def hears_nothing(ws, seconds: float = QUIET) -> bool:
    """Tell whether no frame arrives on `ws` within `seconds`."""
    try:
        frame = await asyncio.wait_for(ws.recv(), seconds)
    except asyncio.TimeoutError:
        return True
    print("unexpected frame:", frame)
    return False


async def say(ws, text: str) -> None:
    await client.send_json(ws, {"message": text}, quiet=True)


async def hears(ws) -> dict:
    return await client.receive(ws, quiet=True)


# --- step 06: groups on the in-memory layer ---------------------------------------------------------------------
# That two clients of a room both hear a message, and another room does not, is the check rooms_share_messages
# (run by test_stages.py under runserver and daphne).


@ON_STEP_6
async def test_ws_chat_without_a_room_is_the_lobby(how, shared_server):
    """/ws/chat/ keeps working: it is the room called lobby, shared with /ws/chat/lobby/."""
    server = shared_server(GROUPS, how)
    async with await client.open_socket(server.ws_url("/ws/chat/"), quiet=True) as plain, \
            await client.open_socket(server.ws_url("/ws/chat/lobby/"), quiet=True) as named:
        await say(plain, "hello lobby")
        assert await hears(plain) == {"message": "hello lobby"}
        assert await hears(named) == {"message": "hello lobby"}


@ON_STEP_6
@pytest.mark.parametrize("path", ["/ws/chat/no%20spaces/", "/ws/chat/caf%C3%A9/", "/ws/chat/" + "x" * 51 + "/"])
async def test_a_room_name_outside_the_slug_pattern_is_not_routed(path, shared_server):
    """A room name with a space, a non-ASCII letter or over 50 characters matches no route: HTTP 500."""
    server = shared_server(GROUPS, "runserver")
    assert await client.handshake_status(server.ws_url(path), quiet=True) == 500


def test_the_consumer_joins_the_room_from_its_path_in_process():
    """In-process, a client of /ws/chat/kitchen/ gets its message back through the group."""
    report = drive(GROUPS, [json.dumps({"message": "via the group"})], path="/ws/chat/kitchen/")
    assert report["error"] is None
    assert [json.loads(reply) for reply in report["replies"]] == [{"message": "via the group"}]
    assert "'kwargs': {'room_name': 'kitchen'}" in report["printed"]


@pytest.mark.parametrize("step", steps(6, 7, 8))
def test_the_page_has_a_room_picker_and_keeps_the_client(step, shared_server):
    """The page adds a room form and keeps step 05's ids, the global chatSocket and the ws/wss choice."""
    body = page(shared_server(step, "runserver").http_url)
    for element in ("room-form", "room-input", "room-name", "state", "log", "chat-form", "message-input",
                    "send-button"):
        assert f'id="{element}"' in body
    assert "location.protocol === 'https:' ? 'wss://' : 'ws://'" in body
    assert "const chatSocket = new WebSocket(wsScheme + location.host + '/ws/chat/'" in body


async def test_two_processes_of_step_06_do_not_share_rooms(serve):
    """Two servers of step 06 each keep their own in-memory layer: a room does not span them."""
    first, second = serve(GROUPS), serve(GROUPS, how="daphne")
    async with await client.open_socket(first.ws_url("/ws/chat/split/"), quiet=True) as here, \
            await client.open_socket(second.ws_url("/ws/chat/split/"), quiet=True) as there:
        await say(here, "anyone?")
        assert await hears(here) == {"message": "anyone?"}
        assert await hears_only_its_own(there)


# --- step 07: the Redis layer ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def on_redis():
    """Return get(step): (redis, runserver, daphne), both servers on that one Redis, started once per module.

    The rooms test and the outage test read the same pair: the outage test ends with Redis back on its port, and
    get() starts again whatever a failed test left stopped.
    """
    from workbook.servers.redis import GET_REDIS, RedisServer, binary

    need(binary() is not None, "redis-server", GET_REDIS)
    pairs: dict[int, tuple] = {}

    def started(process):
        if not process.running:
            process.start()
            STARTED_GROUPS.append(process.pid)
        return process

    def get(step):
        if step.number not in pairs:
            redis = started(RedisServer())
            env = {"REDIS_URL": redis.url}
            pairs[step.number] = (redis, Server(step, env=env), Server(step, how="daphne", env=env))
        return tuple(map(started, pairs[step.number]))

    yield get
    stop_behind(process for pair in pairs.values() for process in pair)


@pytest.mark.parametrize("step", steps(7, 8))
async def test_without_redis_url_the_step_runs_on_the_in_memory_layer_and_says_so(step, serve):
    """With REDIS_URL unset, the startup line and the page name the in-memory layer, and rooms still work."""
    server = serve(step, env={"REDIS_URL": ""})
    server.wait_for_log(r"^channel layer: InMemoryChannelLayer \(this server process only\)$")
    assert '<code id="channel-layer">InMemoryChannelLayer (this server process only)</code>' in page(server.http_url)
    async with await client.open_socket(server.ws_url("/ws/chat/solo/"), quiet=True) as ws:
        await say(ws, "in memory")
        assert await hears(ws) == {"message": "in memory"}


@pytest.mark.parametrize("step", steps(7, 8))
@pytest.mark.redis
async def test_two_servers_share_a_room_through_redis(step, on_redis):
    """A client of one server process reaches a client of another, runserver and daphne, through one Redis."""
    redis, a, b = on_redis(step)
    for server in (a, b):
        server.wait_for_log(rf"^channel layer: RedisChannelLayer at 127\.0\.0\.1:{redis.port}$")
        assert f'<code id="channel-layer">RedisChannelLayer at 127.0.0.1:{redis.port}</code>' in page(server.http_url)
    async with await client.open_socket(a.ws_url("/ws/chat/shared/"), quiet=True) as on_a, \
            await client.open_socket(b.ws_url("/ws/chat/shared/"), quiet=True) as on_b, \
            await client.open_socket(b.ws_url("/ws/chat/other/"), quiet=True) as elsewhere:
        await say(on_a, "from A")
        assert await hears(on_a) == {"message": "from A"}
        assert await hears(on_b) == {"message": "from A"}
        await say(on_b, "from B")
        assert await hears(on_a) == {"message": "from B"}
        assert await hears(on_b) == {"message": "from B"}
        assert await hears_only_its_own(elsewhere)


# Step 7 only: step 8 changes the consumer alone, and both wait on the layer through the same base class and settings.
@pytest.mark.parametrize("step", steps(7))
@pytest.mark.redis
async def test_an_idle_socket_outlives_redis_pys_five_second_read_timeout(step, redis_servers, serve):
    """A socket left quiet for longer than redis-py 8's default 5 s read timeout is still open and in its room."""
    redis = redis_servers()
    server = serve(step, how="daphne", env={"REDIS_URL": redis.url})
    async with await client.open_socket(server.ws_url("/ws/chat/patient/"), quiet=True) as ws:
        # Without socket_timeout the blocked read times out after 5 s, is retried once (retry_on_error), and the
        # error frame arrives after about 10 s: wait longer than that.
        assert await hears_nothing(ws, 12)
        await say(ws, "still here")
        assert await hears(ws) == {"message": "still here"}


@pytest.mark.parametrize("step", steps(7, 8))
def test_run_with_redis_url_pointing_at_nothing_says_how_to_get_a_redis_in_one_line(step):
    """`python -m workbook run 7` with a dead REDIS_URL prints one line on how to get a Redis and exits 1."""
    url = f"redis://127.0.0.1:{free_port()}/0"
    result = run_python("-m", "workbook", "run", str(step.number), "--port", str(free_port()), env={"REDIS_URL": url})
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert f"no Redis answers at REDIS_URL={url}" in lines[0]
    assert "workbook redis" in lines[0] or "install" in lines[0]
    assert "unset REDIS_URL" in lines[0]
    assert "Starting" not in result.stdout


@pytest.mark.parametrize("step", steps(7, 8))
@pytest.mark.redis
async def test_redis_stopping_mid_run_gives_clients_an_error_and_delivery_resumes_when_it_is_back(
        step, on_redis):
    """Redis going away sends each client an error frame and a 1011 close; the servers stay up and recover."""
    redis, a, b = on_redis(step)
    on_a = await client.open_socket(a.ws_url("/ws/chat/outage/"), quiet=True)
    on_b = await client.open_socket(b.ws_url("/ws/chat/outage/"), quiet=True)
    await say(on_a, "before")
    assert [await hears(on_a), await hears(on_b)] == [{"message": "before"}] * 2

    redis.stop()
    for ws in (on_a, on_b):
        error = await hears(ws)
        assert error["error"].startswith("channel layer unavailable: "), error
        assert await client.wait_closed(ws, quiet=True) == 1011
    for server in (a, b):
        assert server.running and f"<h1>Step {step.number:02d} · {step.title}</h1>" in page(server.http_url)
        # A handshake while Redis is away is refused outright: the consumer cannot join its room.
        assert await client.handshake_status(server.ws_url("/ws/chat/outage/"), quiet=True) == 500

    redis.start()  # on its port again
    STARTED_GROUPS.append(redis.pid)
    async with await client.open_socket(a.ws_url("/ws/chat/outage/"), quiet=True) as on_a, \
            await client.open_socket(b.ws_url("/ws/chat/outage/"), quiet=True) as on_b:
        await say(on_b, "after")
        assert await hears(on_a) == {"message": "after"}
        assert await hears(on_b) == {"message": "after"}
