"""`python -m workbook chat ws://HOST:PORT/ws/chat/ROOM/`: a terminal client for a room, logged in if asked.

Each line typed is sent as {"message": …}; each frame the room sends is printed as `user: message`. It sends the
page's own Origin (the origin validator of final/ wants one) and, with --login USER:PASSWORD, logs in through the
site's login form first and sends the session cookie with the handshake, as a browser does (notebook 09).
"""

from __future__ import annotations

import asyncio
import json
import sys
from urllib.parse import urlsplit

from ..errors import WorkbookError

TIMEOUT = 30.0


def _line(frame: str) -> str:
    try:
        data = json.loads(frame)
    except ValueError:
        return frame
    if not isinstance(data, dict):
        return frame
    if "error" in data:
        return f"(the server: {data['error']})"
    return f"{data['user']}: {data.get('message')}" if data.get("user") else str(data.get("message", frame))


async def _connect(url: str, login: str | None):
    from websockets.asyncio.client import connect
    from websockets.exceptions import InvalidStatus

    parts = urlsplit(url)
    if parts.scheme not in ("ws", "wss") or not parts.hostname:
        raise WorkbookError(f"{url} is not a websocket URL: give ws://HOST:PORT/ws/chat/ROOM/")
    site = f"{'https' if parts.scheme == 'wss' else 'http'}://{parts.netloc}"
    headers = {"Origin": site}
    if login:
        from ..login import login as log_in

        user, _, password = login.partition(":")
        try:
            session = await asyncio.to_thread(log_in, site, user, password, TIMEOUT)
        except OSError as error:
            raise WorkbookError(f"cannot reach {site} to log in: {getattr(error, 'reason', error)}") from None
        headers["Cookie"] = f"sessionid={session}"
    try:
        return await connect(url, additional_headers=headers, open_timeout=TIMEOUT, proxy=None)
    except InvalidStatus as refused:
        status = refused.response.status_code
        why = " (log in: --login USER:PASSWORD)" if status == 403 and not login else ""
        raise WorkbookError(f"the room refused the socket with HTTP {status}{why}") from None
    except OSError as error:
        raise WorkbookError(f"cannot reach {parts.netloc}: {error.strerror or error}") from None


async def _typed_lines(ws) -> None:
    """Send each line typed on stdin, until stdin ends."""
    while True:
        line = await asyncio.to_thread(sys.stdin.readline)
        if not line:
            return
        if line.strip():
            await ws.send(json.dumps({"message": line.rstrip("\n")}))


async def chat(url: str, login: str | None = None, send: str | None = None) -> int:
    """Join the room; with `send`, send it and return once the room has broadcast it back; else chat until Ctrl-C."""
    ws = await _connect(url, login)
    async with ws:
        print(f"joined {url} as {login.partition(':')[0] if login else 'anonymous'}", flush=True)
        typing = None
        if send is not None:
            await ws.send(json.dumps({"message": send}))
        else:
            typing = asyncio.create_task(_typed_lines(ws))
        try:
            async for frame in ws:
                print(_line(frame), flush=True)
                if send is not None and _line(frame).endswith(send):
                    return 0
        finally:
            if typing is not None:
                typing.cancel()
    return 0


def cmd_chat(args) -> int:
    try:
        return asyncio.run(chat(args.url, args.login, args.send))
    except KeyboardInterrupt:
        return 0


def add_commands(sub) -> None:
    """Add `chat`: a terminal client for a room (the one-liner `make room` gives out)."""
    client = sub.add_parser("chat", help="chat in a room from the terminal: python -m workbook chat ws://…/ws/chat/ROOM/")
    client.add_argument("url", help="the room's websocket, e.g. ws://192.168.1.23:8000/ws/chat/class/")
    client.add_argument("--login", metavar="USER:PASSWORD", help="log in first (step 9 on and final refuse others)")
    client.add_argument("--send", metavar="TEXT", help="send one message, print the room's broadcast of it, and exit")
    client.set_defaults(func=cmd_chat)
