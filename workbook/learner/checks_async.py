"""The checks of step 8: ChatConsumer is an async JSON consumer, every coroutine is awaited, nothing blocks."""

from __future__ import annotations

from ..catalogue import fix
from ..doctor.async_lint import scan
from .check_base import IN_PROCESS, Failed, Run, check

HANDLERS = ("connect", "disconnect", "receive_json", "chat_message")


@check("ChatConsumer is an AsyncJsonWebsocketConsumer whose handlers are coroutines", served=IN_PROCESS)
def consumer_is_async_json(run: Run) -> None:
    consumer = run.facts().get("consumer_class")
    if not consumer:
        raise Failed("chat/consumers.py defines no ChatConsumer",
                     "name the class ChatConsumer: the routing and the checks import it by that name")
    bases, methods = consumer["bases"], consumer["methods"]
    if "AsyncJsonWebsocketConsumer" not in bases:
        if "SyncConsumer" in bases:
            raise Failed(f"ChatConsumer is a {bases[0]}: a sync consumer, each of its events runs on a worker thread",
                         "subclass AsyncJsonWebsocketConsumer (from channels.generic.websocket) and make connect, "
                         "disconnect and chat_message async def")
        raise Failed(f"ChatConsumer is a {bases[0]}, not an AsyncJsonWebsocketConsumer",
                     "subclass AsyncJsonWebsocketConsumer: it decodes each frame for receive_json(content) and "
                     "encodes what you pass to send_json(...)")
    plain = [name for name in HANDLERS if methods[name]["owner"] == "ChatConsumer" and not methods[name]["coroutine"]]
    if plain:
        raise Failed(f"ChatConsumer.{', '.join(plain)} {'is a plain def' if len(plain) == 1 else 'are plain defs'}",
                     f"make {' and '.join(plain)} async def: an async consumer awaits every handler")
    if methods["receive"]["owner"] == "ChatConsumer":
        raise Failed("ChatConsumer still overrides receive(), so the base class never decodes the frame",
                     "rename it receive_json(self, content) and drop json.loads: content is the decoded JSON")
    if methods["receive_json"]["owner"] != "ChatConsumer":
        raise Failed("ChatConsumer defines no receive_json(), so every message is dropped",
                     "add async def receive_json(self, content): the message is content['message']")


@check("every coroutine is awaited, and no handler blocks the event loop", served=IN_PROCESS)
def awaits_and_never_blocks(run: Run) -> None:
    mistakes = scan(run.project)
    if not mistakes:
        return
    first = mistakes[0]
    if first.kind == "unawaited":
        raise Failed(str(first), f"write await {first.call}(…): without await the call only builds a coroutine, "
                                 "which never runs")
    if first.kind == "sync-orm":
        raise Failed(str(first), fix("sync-orm-in-async"))
    raise Failed(str(first), f"every connection of the process waits while it runs: {fix('blocking-sleep')}")
