"""The checks of steps 6 and 7: rooms hear each other's messages, in one process or shared through Redis."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ..doctor.hints import from_traceback, hint_for
from ..servers.server import Server
from .check_base import QUICK, RUNSERVER, Failed, Run, Unavailable, check


async def _rooms(urls: tuple[str, str, str], origin: str) -> dict:
    """A and B join room-a, C joins room-b; A speaks, then C. Return what each heard first, or why not (C: when A
    heard its own message)."""
    from websockets.exceptions import ConnectionClosed

    from ..client import open_socket, receive, send_json

    heard: dict = {}
    sockets = []

    async def first(name, ws):
        try:
            heard[name] = await receive(ws, timeout=QUICK, quiet=True)
        except (TimeoutError, asyncio.TimeoutError):
            heard[name] = "nothing"
        except ConnectionClosed as closed:
            heard[name] = f"closed {closed.rcvd.code if closed.rcvd else 1006}"

    try:
        for url in urls:
            sockets.append(await open_socket(url, origin=origin, quiet=True))
        a, b, c = sockets
        await send_json(a, {"message": "to room a"}, quiet=True)
        # Waited for side by side, and C only once room a works: a broken project fails in one QUICK, not three.
        await asyncio.gather(first("a", a), first("b", b))
        if heard["a"] == {"message": "to room a"}:
            await send_json(c, {"message": "to room b"}, quiet=True)
            await first("c", c)
    finally:
        for ws in sockets:
            await ws.close()
    return heard


def _room_urls(first: Server, second: Server) -> tuple[str, str, str]:
    return first.ws_url("/ws/chat/room-a/"), second.ws_url("/ws/chat/room-a/"), first.ws_url("/ws/chat/room-b/")


def _judge_rooms(heard, log: str, project: Path, shared: str = "") -> None:
    if isinstance(heard, Exception):
        problem = from_traceback(log, project)
        where = f"open {problem.file} at line {problem.line}" if problem and problem.file else "read the server output"
        raise Failed(str(problem) if problem else f"{type(heard).__name__}: {heard}", hint_for(log, where))
    said = {"message": "to room a"}
    if heard.get("a") == said and heard.get("b") == said and heard.get("c") == {"message": "to room b"}:
        return
    problem = from_traceback(log, project)
    detail = f"A heard {heard.get('a')!r}, B heard {heard.get('b')!r}" + (f"; {problem}" if problem else "")
    if problem or heard.get("a") != said:
        raise Failed(detail, hint_for(log, "receive() must group_send to the room, and chat_message() send it on"))
    if heard.get("b") != said:
        raise Failed(detail, shared or "receive() still answers with self.send: group_send(room_group_name, "
                                        "{'type': 'chat.message', 'message': message}) instead")
    raise Failed(f"C, in room-b, heard {heard.get('c')!r}",
                 "name the group after the room (f'chat_{room_name}'), so rooms do not hear each other")


@check("a room path, /ws/chat/room-a/, is accepted")
def room_route(run: Run) -> None:
    async def action(server, origin):
        from ..client import handshake_status

        return await handshake_status(server.ws_url("/ws/chat/room-a/"), origin=origin, quiet=True)

    status, log = run.websocket(action)
    if status != 101:
        hint = ("chat/routing.py has no route for a room: add "
                "re_path(r'ws/chat/(?P<room_name>[A-Za-z0-9_-]{1,50})/$', consumers.ChatConsumer.as_asgi())"
                if "No route found" in log else hint_for(log))
        problem = from_traceback(log, run.project)
        raise Failed(f"the handshake got {status}" + (f": {problem}" if problem and not hint else ""), hint)


@check("two clients in one room both hear a message, and another room does not")
def rooms_share_messages(run: Run) -> None:
    heard, log = run.websocket(lambda server, origin: _rooms(_room_urls(server, server), origin))
    run.rooms_failed = True  # until judged sound: the Redis check below reads it
    _judge_rooms(heard, log, run.project)
    run.rooms_failed = False


@check("with REDIS_URL set, two server processes share a room", served=RUNSERVER)
def redis_shares_rooms(run: Run) -> None:
    from ..servers.redis import GET_REDIS, RedisServer, binary

    if binary() is None:
        raise Unavailable(f"redis-server is not installed: {GET_REDIS}")
    if getattr(run, "rooms_failed", False):
        # Two servers cannot share a room that one server's own clients do not: it would only wait QUICK again.
        raise Unavailable("fix the failure above first")
    with RedisServer() as redis:
        env = {"REDIS_URL": redis.url}
        servers = [Server(run.project, label=f"{run.label}-redis-{n}", env=env) for n in (1, 2)]
        try:
            # Both start at once: each takes seconds, and they do not depend on each other.
            with ThreadPoolExecutor(2) as pool:
                list(pool.map(Server.start, servers))
            one, two = servers
            try:
                heard = asyncio.run(_rooms(_room_urls(one, two), one.http_url.rstrip("/")))
            except Exception as error:  # the client's failure is evidence
                heard = error
            log = one.log_text() + two.log_text()
        finally:
            for server in servers:
                server.stop()
    _judge_rooms(heard, log, run.project, shared=(
        "the servers do not share the layer: when REDIS_URL is set, CHANNEL_LAYERS['default'] must be "
        "'channels_redis.core.RedisChannelLayer' with REDIS_URL in CONFIG['hosts']"))
