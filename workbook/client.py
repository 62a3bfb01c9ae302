"""A small websockets client for the checks and tests (the notebooks write their conversations out instead)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from .state import TIMEOUT


def _show(prefix: str, data: Any, quiet: bool) -> None:
    if not quiet:
        shown = data if isinstance(data, str) else repr(data)
        print(f"{prefix} {shown}", flush=True)


async def open_socket(url: str, origin: str | None = None, quiet: bool = False, **options) -> ClientConnection:
    """Open a websocket to `url`, sending an Origin header when given one."""
    headers = {"Origin": origin} if origin else None
    ws = await connect(url, origin=None, additional_headers=headers, open_timeout=TIMEOUT, **options)
    _show("--- connected to", url, quiet)
    return ws


async def send_json(ws: ClientConnection, payload: Any, quiet: bool = False) -> None:
    """Send `payload` as a JSON text frame."""
    text = json.dumps(payload)
    await ws.send(text)
    _show(">>> sent", text, quiet)


async def send_text(ws: ClientConnection, text: str | bytes, quiet: bool = False) -> None:
    """Send a raw text (str) or binary (bytes) frame, as a misbehaving client might."""
    await ws.send(text)
    _show(">>> sent", text, quiet)


async def receive(ws: ClientConnection, timeout: float = TIMEOUT, quiet: bool = False) -> Any:
    """Receive one frame and decode it from JSON when it is JSON."""
    data = await asyncio.wait_for(ws.recv(), timeout)
    _show("<<< received", data, quiet)
    try:
        return json.loads(data)
    except (TypeError, ValueError):
        return data


async def wait_closed(ws: ClientConnection, timeout: float = TIMEOUT, quiet: bool = False) -> int | None:
    """Wait for the server to close the socket; return the close code it sent."""
    try:
        while True:
            await asyncio.wait_for(ws.recv(), timeout)
    except ConnectionClosed as closed:
        code = closed.rcvd.code if closed.rcvd else None
        reason = closed.rcvd.reason if closed.rcvd else ""
        _show("--- closed by the server with code", f"{code} {reason}".strip(), quiet)
        return code


async def echo(url: str, message: str = "hello", origin: str | None = None, quiet: bool = False) -> Any:
    """Connect, send {"message": message}, and return the decoded reply."""
    async with await open_socket(url, origin=origin, quiet=quiet) as ws:
        await send_json(ws, {"message": message}, quiet=quiet)
        return await receive(ws, quiet=quiet)


async def handshake_status(url: str, origin: str | None = None, quiet: bool = False) -> int:
    """Try a handshake and return its HTTP status: 101 when accepted, else the refusal's status."""
    try:
        ws = await open_socket(url, origin=origin, quiet=True)
    except InvalidStatus as refused:
        status = refused.response.status_code
        _show("--- handshake refused with HTTP", status, quiet)
        return status
    await ws.close()
    _show("--- handshake accepted: HTTP", 101, quiet)
    return 101
