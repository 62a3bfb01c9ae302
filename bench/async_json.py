"""Step 07 (sync consumer) against step 08 (async JSON consumer): round trips per second and server threads.

Run: `.venv/bin/python bench/async_json.py [--seconds 2] [--rounds 3]` from the repository root.
Both steps are served by the daphne CLI on the in-memory layer, side by side, and measured in alternating order
(a shared machine's load swings). Each of N clients sits in its own room and sends {"message": …}, waits for the
group's echo, and sends again, for the given seconds. Prints a Markdown table with 08/07 ratios. Not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import psutil  # noqa: E402
import websockets  # noqa: E402

from workbook import Server, get_step  # noqa: E402

CONNECTIONS = (1, 10, 100)


def server_process(server: Server) -> psutil.Process:
    """The daphne process itself: the runner's guard is its parent."""
    guard = psutil.Process(server.pid)
    return next((p for p in guard.children(recursive=True) if "daphne" in " ".join(p.cmdline())), guard)


async def round_trips(server: Server, connections: int, seconds: float) -> tuple[float, int]:
    """Return the round trips per second N clients get together, and the server's thread count under that load."""
    sockets = await asyncio.gather(*(websockets.connect(server.ws_url(f"/ws/chat/bench-{n}/"), open_timeout=30)
                                     for n in range(connections)))
    done = 0

    async def talk(ws):
        nonlocal done
        while time.monotonic() < deadline:
            await ws.send(json.dumps({"message": "ping"}))
            await ws.recv()
            done += 1

    deadline = time.monotonic() + seconds
    await asyncio.gather(*(talk(ws) for ws in sockets))
    threads = server_process(server).num_threads()
    await asyncio.gather(*(ws.close() for ws in sockets))
    return done / seconds, threads


async def measure(servers: dict[str, Server], seconds: float, rounds: int) -> dict:
    results = {(name, n): [] for name in servers for n in CONNECTIONS}
    threads = {}
    for round_ in range(rounds):
        for n in CONNECTIONS:
            order = list(servers) if round_ % 2 == 0 else list(reversed(servers))
            for name in order:
                rate, count = await round_trips(servers[name], n, seconds)
                results[name, n].append(rate)
                threads[name, n] = max(threads.get((name, n), 0), count)
    return {key: (statistics.median(rates), threads[key]) for key, rates in results.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="seconds of traffic per measurement")
    parser.add_argument("--rounds", type=int, default=3, help="rounds, alternating which step goes first")
    args = parser.parse_args()
    servers = {"07": Server(get_step(7), how="daphne", env={"REDIS_URL": ""}),
               "08": Server(get_step(8), how="daphne", env={"REDIS_URL": ""})}
    try:
        for server in servers.values():
            server.start()
        idle = {name: server_process(server).num_threads() for name, server in servers.items()}
        load = os.getloadavg()[0]
        found = asyncio.run(measure(servers, args.seconds, args.rounds))
    finally:
        for server in servers.values():
            server.stop()
    print(f"Steps 07 and 08 under the daphne CLI, in-memory layer; median of {args.rounds} rounds of "
          f"{args.seconds:g} s; {os.cpu_count()} CPUs, load average {load:.1f} at start, "
          f"{os.getloadavg()[0]:.1f} at the end. Threads when idle: 07 {idle['07']}, 08 {idle['08']}.\n")
    print("| connections | 07 round trips/s | 08 round trips/s | 08 / 07 | 07 threads | 08 threads |")
    print("|---:|---:|---:|---:|---:|---:|")
    for n in CONNECTIONS:
        (sync, sync_threads), (async_, async_threads) = found["07", n], found["08", n]
        print(f"| {n} | {sync:.0f} | {async_:.0f} | {async_ / sync:.2f} | {sync_threads} | {async_threads} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
