"""The baseline for the echo benchmark: a bare `websockets` server that sends every frame back."""

import asyncio
import sys

from websockets.asyncio.server import serve


async def echo(websocket):
    async for frame in websocket:
        await websocket.send(frame)


async def main(port: int) -> None:
    async with serve(echo, "127.0.0.1", port, max_size=2**20) as server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
