"""Measure what one flooding client does to the rest of its room: their round trips, with and without the flood.

A room of logged-in clients on final/: all but one take turns like people typing (send, wait for the message to
come back, pause), and record each round trip. In the quiet phase the last client only listens; in the flood
phase it sends frames as fast as its socket takes them; the rate limit closes its socket (code 4429), and it
reconnects and floods again. The figure is the talkers' round-trip median and p99 in the flood phase, as a ratio
to the quiet phase; each round measures both phases back to back, in a fresh room; the median over rounds
is reported.

Run it with `python -m workbook bench flood` (add --write to put the table in docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import sys
import time
from contextlib import ExitStack
from pathlib import Path

from _logins import logged_in
from load import DOC, FINAL, final_server, open_client, write_doc
from websockets.exceptions import ConnectionClosed

from workbook.servers.redis import RedisServer, binary
from workbook.servers.server import Server

# A phase stops sending after this many seconds, measured or not: a flood can slow every round trip to seconds.
PHASE_LIMIT = 60
START, END = "<!-- flood: written by `python -m workbook bench flood --write` -->", "<!-- end of flood -->"


def spread(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return ordered[len(ordered) // 2], ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def last_client(url: str, session: str, flood: bool, ready, stop, results) -> None:
    """In its own process, like a client on another machine: join the room, then flood (or listen) until `stop`.

    The rate limit closes a flooding socket (code 4429); this client then reconnects and floods again, as a
    determined one would, so the flood lasts the whole phase and its handshakes are part of what it costs.
    """
    counts = {"sent": 0, "closed": 0, "codes": {}, "delivered": 0}

    async def main() -> None:
        while not stop.is_set():
            ws = await open_client(url, session)
            ready.set()

            async def listen(ws=ws) -> None:
                try:
                    async for frame in ws:
                        counts["delivered"] += "message" in json.loads(frame)
                except ConnectionClosed:
                    pass  # the close code is read from the sending side

            reader = asyncio.ensure_future(listen())
            try:
                while not stop.is_set():
                    if not flood:
                        await asyncio.sleep(0.05)
                        continue
                    for _ in range(50):
                        await ws.send('{"message": "flood"}')
                    counts["sent"] += 50
                    await asyncio.sleep(0)  # let the reader take the replies
                await ws.close()
            except ConnectionClosed:
                code = ws.close_code
                counts["closed"] += 1
                counts["codes"][code] = counts["codes"].get(code, 0) + 1
            await asyncio.wait_for(reader, 60)

    asyncio.run(main())
    results.put(counts)


async def talkers(url: str, sessions: list[str], messages: int, gap: float) -> tuple[list[float], float]:
    """Each talker sends `messages` messages, each after its previous one came back and a pause of `gap` s."""
    sockets = await asyncio.gather(*(open_client(url, key) for key in sessions))
    round_trips: list[float] = []

    async def talk(ws, name: str, until: float) -> None:
        seen: set[str] = set()
        for k in range(messages):
            if time.monotonic() > until:
                return
            mine, sent = f"{name}:{k}", time.monotonic()
            await ws.send(json.dumps({"message": mine}))
            while mine not in seen:
                data = json.loads(await asyncio.wait_for(ws.recv(), 60))
                if "error" in data:
                    raise RuntimeError(f"{name} got an error frame: {data['error']}")
                seen.add(data["message"])
            round_trips.append(time.monotonic() - sent)
            await asyncio.sleep(gap)

    started = time.monotonic()
    await asyncio.gather(*(talk(ws, f"t{i}", started + PHASE_LIMIT) for i, ws in enumerate(sockets)))
    seconds = time.monotonic() - started
    await asyncio.gather(*(ws.close() for ws in sockets))
    return round_trips, seconds


def phase(url: str, sessions: list[str], messages: int, gap: float, flood: bool) -> dict:
    """One room: the talkers' round trips, and what the last client sent and got back."""
    context = multiprocessing.get_context("spawn")
    ready, stop, results = context.Event(), context.Event(), context.Queue()
    other = context.Process(target=last_client, args=(url, sessions[-1], flood, ready, stop, results))
    other.start()
    try:
        if not ready.wait(60):
            raise RuntimeError("the last client did not join the room within 60 s")
        round_trips, seconds = asyncio.run(talkers(url, sessions[:-1], messages, gap))
        stop.set()
        counts = results.get(timeout=60)
    finally:
        stop.set()
        other.join(60)
        if other.is_alive():
            other.kill()
    median, p99 = spread(round_trips)
    return {"median": median, "p99": p99, "seconds": seconds, "flood_rate": counts["sent"] / seconds, **counts}


def run(args) -> dict:
    python = Server(args.project, port=1).command()[0]
    database, sessions = logged_in(args.project, python, args.room, name="flood")
    results: dict = {"args": {k: str(v) for k, v in vars(args).items()}, "layers": {}}
    layers = ["in-memory"] + (["redis"] if args.redis and binary() else [])
    for layer, how in [(layer, how) for how in args.servers for layer in layers]:
        with ExitStack() as stack:
            env = dict(database)
            if layer == "redis":
                env["REDIS_URL"] = stack.enter_context(RedisServer()).url
            server = stack.enter_context(final_server(how, env, args.project))
            rounds = []
            for k in range(args.rounds):
                # Rooms of their own: a room's history would be replayed to the talkers as they join.
                tag = f"{layer.replace('-', '')}-{how}-{k}"
                quiet = phase(server.ws_url(f"/ws/chat/quiet-{tag}/"), sessions, args.messages, args.gap, False)
                flood = phase(server.ws_url(f"/ws/chat/flood-{tag}/"), sessions, args.messages, args.gap, True)
                rounds.append({"quiet": quiet, "flood": flood})
                print(f"flood  {layer}, {how}, round {k + 1}: quiet {quiet['median'] * 1000:.1f} / "
                      f"{quiet['p99'] * 1000:.1f} ms, flood {flood['median'] * 1000:.1f} / "
                      f"{flood['p99'] * 1000:.1f} ms; the flooder sent"
                      f" {flood['sent']} frames ({flood['flood_rate']:.0f}/s) and was closed {flood['closed']} times"
                      f" (codes {flood['codes']})", flush=True)

        def median(values):
            return sorted(values)[len(values) // 2]

        results["layers"][f"{layer}, {how}"] = {
            "quiet_median_ms": median([r["quiet"]["median"] * 1000 for r in rounds]),
            "quiet_p99_ms": median([r["quiet"]["p99"] * 1000 for r in rounds]),
            "flood_median_ms": median([r["flood"]["median"] * 1000 for r in rounds]),
            "flood_p99_ms": median([r["flood"]["p99"] * 1000 for r in rounds]),
            "median_ratio": median([r["flood"]["median"] / r["quiet"]["median"] for r in rounds]),
            "p99_ratio": median([r["flood"]["p99"] / r["quiet"]["p99"] for r in rounds]),
            "flood_rate": median([r["flood"]["flood_rate"] for r in rounds]),
            "closes_per_s": median([r["flood"]["closed"] / r["flood"]["seconds"] for r in rounds]),
            "codes": sorted({code for r in rounds for code in r["flood"]["codes"]}),
        }
    return results


def markdown(results: dict) -> str:
    a = results["args"]
    lines = [
        START,
        f"### One client floods its room: the others' round trips "
        f"({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})",
        "",
        f"final on {a['servers']}, rooms of {a['room']} logged-in clients: {int(a['room']) - 1} talkers each send "
        f"{a['messages']} messages {a['gap']} s apart; the last client floods (or, in the quiet phase, listens). "
        f"Median of {a['rounds']} rounds. Command: `{' '.join(['python', 'bench/flood.py', *sys.argv[1:]])}`.",
        "",
        "| layer, server | quiet: median / p99 | flood: median / p99 | ratio median / p99 | flooder's frames/s "
        "| flooder closed (per second) | close codes |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for layer, r in results["layers"].items():
        lines.append(f"| {layer} | {r['quiet_median_ms']:.1f} / {r['quiet_p99_ms']:.1f} ms | "
                     f"{r['flood_median_ms']:.1f} / {r['flood_p99_ms']:.1f} ms | "
                     f"{r['median_ratio']:.2f}× / {r['p99_ratio']:.2f}× | {r['flood_rate']:.0f} | "
                     f"{r['closes_per_s']:.1f} | {', '.join(map(str, r['codes']))} |")
    return "\n".join([*lines, END])


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench/flood.py", description=__doc__.splitlines()[0])
    parser.add_argument("--room", type=int, default=10, help="clients in the room, the flooder included (default 10)")
    parser.add_argument("--messages", type=int, default=30, help="messages each talker sends (default 30)")
    parser.add_argument("--gap", type=float, default=0.25, help="seconds a talker waits between messages")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of quiet and flood (default 3)")
    parser.add_argument("--servers", nargs="+", default=["uvicorn", "daphne"], choices=["daphne", "uvicorn"])
    parser.add_argument("--no-redis", dest="redis", action="store_false", help="skip the Redis layer")
    parser.add_argument("--project", type=Path, default=FINAL, help="the project to measure (default final/)")
    parser.add_argument("--json", metavar="FILE", help="also write the raw results as JSON")
    parser.add_argument("--write", action="store_true", help="put the table in docs/benchmarks.md")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    results = run(args)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    text = markdown(results)
    if args.write:
        write_doc(results, DOC, START, END, text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
