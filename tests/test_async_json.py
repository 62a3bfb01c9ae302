"""Step 08: step 07's chat as an AsyncJsonWebsocketConsumer holds the same conversation over the wire."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import pytest
from conftest import run_python
from websockets.exceptions import ConnectionClosed

from workbook import client, get_step

REDIS, ASYNC_JSON = get_step(7), get_step(8)
# Frames a misbehaving client sends; the article's consumer raises on each and the server closes with 1011.
BAD_FRAMES = ["not json", '{"text": "no message key"}', "[1, 2]", '"a string"', "", b"\x00binary"]


async def conversation(server) -> list[str]:
    """Play one scripted exchange against a server; return what every client saw, frame for frame."""
    seen: list[str] = []

    async def heard(name, ws):
        seen.append(f"{name} <<< {await asyncio.wait_for(ws.recv(), 10)}")

    async with await client.open_socket(server.ws_url("/ws/chat/kitchen/"), quiet=True) as alice, \
            await client.open_socket(server.ws_url("/ws/chat/kitchen/"), quiet=True) as bob, \
            await client.open_socket(server.ws_url("/ws/chat/garden/"), quiet=True) as carol, \
            await client.open_socket(server.ws_url("/ws/chat/"), quiet=True) as dave:
        for text in ["soup is ready", "été ☕ \"quoted\" <b>bold</b>", "x" * 3000]:
            await client.send_json(alice, {"message": text, "extra": 1}, quiet=True)
            await heard("alice", alice)
            await heard("bob", bob)
        # Had carol or dave heard the kitchen, that frame would come before their own message.
        for name, ws in (("carol", carol), ("dave", dave)):
            await client.send_json(ws, {"message": f"{name} here"}, quiet=True)
            await heard(name, ws)
        await client.send_json(bob, {"message": 42}, quiet=True)
        await heard("alice", alice)

    async def bad(n, frame):
        # Each in a room of its own, so they can go at once: daphne notices a crashed consumer once a second.
        async with await client.open_socket(server.ws_url(f"/ws/chat/bad-{n}/"), quiet=True) as ws:
            await ws.send(frame)
            try:
                await asyncio.wait_for(ws.recv(), 10)
                return f"{frame!r}: answered"
            except ConnectionClosed as closed:
                return f"{frame!r}: closed {closed.rcvd.code if closed.rcvd else None}"

    async def refused(path):
        return f"{path}: HTTP {await client.handshake_status(server.ws_url(path), quiet=True)}"

    seen += await asyncio.gather(*(bad(n, frame) for n, frame in enumerate(BAD_FRAMES)),
                                 *(refused(path) for path in ("/ws/chat/no%20spaces/", "/ws/elsewhere/")))
    return seen


async def test_steps_07_and_08_hold_the_same_conversation(serve):
    """The same scripted exchange against step 07 and step 08 gives the same transcript, frame for frame."""
    # The consumers run in the same daphne Server whichever way it is started: runserver here, and test_stages.py
    # checks both steps under runserver and the daphne CLI. The two servers start, and hold their conversations,
    # side by side: they share nothing.
    servers = await asyncio.gather(*(asyncio.to_thread(serve, step, env={"REDIS_URL": ""})
                                     for step in (REDIS, ASYNC_JSON)))
    transcripts = await asyncio.gather(*map(conversation, servers))
    assert transcripts[0] == transcripts[1]
    assert "bob <<< {\"message\": \"soup is ready\"}" in transcripts[1]
    assert "alice <<< {\"message\": 42}" in transcripts[1]
    assert transcripts[1].count("carol <<< {\"message\": \"carol here\"}") == 1
    assert all(line.endswith("closed 1011") for line in transcripts[1] if ": closed" in line or ": answered" in line)
    assert transcripts[1][-2:] == ["/ws/chat/no%20spaces/: HTTP 500", "/ws/elsewhere/: HTTP 500"]


@pytest.mark.redis
async def test_a_step_07_server_and_a_step_08_server_share_a_room_through_redis(redis_servers, serve):
    """The sync and the async consumer speak the same layer protocol: one Redis room spans both servers."""
    redis = redis_servers()
    env = {"REDIS_URL": redis.url}
    sync, async_ = serve(REDIS, env=env), serve(ASYNC_JSON, how="daphne", env=env)
    async with await client.open_socket(sync.ws_url("/ws/chat/mixed/"), quiet=True) as on_07, \
            await client.open_socket(async_.ws_url("/ws/chat/mixed/"), quiet=True) as on_08:
        await client.send_json(on_07, {"message": "from 07"}, quiet=True)
        assert [await client.receive(on_07, quiet=True), await client.receive(on_08, quiet=True)] == [
            {"message": "from 07"}] * 2
        await client.send_json(on_08, {"message": "from 08"}, quiet=True)
        assert [await client.receive(on_07, quiet=True), await client.receive(on_08, quiet=True)] == [
            {"message": "from 08"}] * 2


def test_step_08s_consumer_is_async_and_json_where_step_07s_is_sync():
    """Imported in its own project, 08's ChatConsumer is an AsyncJsonWebsocketConsumer with coroutine handlers."""
    probe = (
        "import inspect, django; django.setup(); from chat.consumers import ChatConsumer as C; "
        "print([k.__name__ for k in C.__mro__[1:4]], "
        "[inspect.iscoroutinefunction(getattr(C, m)) for m in ('connect', 'disconnect', 'chat_message')])"
    )
    env = {"DJANGO_SETTINGS_MODULE": "mychannels.settings"}
    with ThreadPoolExecutor(2) as pool:  # two interpreters loading Django: side by side
        seen = [done.stdout.strip() for done in pool.map(
            lambda step: run_python("-c", probe, cwd=step.path, env=env), (REDIS, ASYNC_JSON))]
    assert seen == [
        "['WebsocketConsumer', 'SyncConsumer', 'AsyncConsumer'] [False, False, False]",
        "['AsyncJsonWebsocketConsumer', 'AsyncWebsocketConsumer', 'AsyncConsumer'] [True, True, True]",
    ]
