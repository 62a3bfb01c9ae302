"""A websocket echo written against ASGI itself: what every Channels consumer is built on.

Serve it with `daphne raw_asgi_echo:app` from this directory (notebook 01 does).
"""


async def app(scope, receive, send):
    if scope["type"] != "websocket":
        return  # this app speaks websocket only: daphne answers any HTTP request with a 500
    while True:
        event = await receive()
        print("app received", event, flush=True)
        if event["type"] == "websocket.connect":
            await send({"type": "websocket.accept"})
        elif event["type"] == "websocket.receive":
            await send({"type": "websocket.send", "text": event["text"]})
        elif event["type"] == "websocket.disconnect":
            return
