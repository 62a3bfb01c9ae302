"""Measure final/ under load: a 1000-client surge into rooms, echo rate against raw websockets, idle memory.

The `trace` part measures what `run --trace` costs: step 04's echo rate with the trace, as a ratio to the
same server without it.

Run it with `make bench` or `python -m workbook bench` (add --write to refresh docs/benchmarks.md).
Everything listens on 127.0.0.1 and every loop is bounded by a count or a deadline. Linux only: the memory
figures read /proc, and the open-files limit is raised with `resource`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _logins import cookie, logged_in  # noqa: E402

from workbook.registry import get_step  # noqa: E402
from workbook.servers.redis import GET_REDIS, RedisServer, binary  # noqa: E402
from workbook.servers.server import Server, free_port  # noqa: E402

FINAL = ROOT / "final"
DOC = ROOT / "docs" / "benchmarks.md"
DEADLINE = float(os.environ.get("BENCH_DEADLINE", "300"))
PACKAGES = ("Django", "channels", "daphne", "uvicorn", "websockets", "channels-redis", "redis", "twisted")


# --- processes ------------------------------------------------------------------


def raise_open_files(wanted: int) -> int:
    """Lift the soft open-files limit towards `wanted` (bounded by the hard limit); return the new limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def group_rss_kib(pgid: int) -> int:
    """Sum the resident memory of every process in process group `pgid`, in KiB."""
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            # Fields after the command name (which may hold spaces): state ppid pgrp …
            if int(stat.rsplit(")", 1)[1].split()[2]) != pgid:
                continue
            for line in (entry / "status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except (OSError, IndexError, ValueError):
            continue
    return total


def group_cpu_seconds(pgid: int) -> float:
    """Sum the CPU time (user + system) used so far by every process in process group `pgid`."""
    ticks = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid:
                ticks += int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            continue
    return ticks / os.sysconf("SC_CLK_TCK")


def wait_listening(port: int, process: subprocess.Popen, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with code {process.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on port {port} within {timeout:.0f} s")


@contextmanager
def background(cmd: list[str], port: int, what: str, log: Path):
    """Run `cmd` in its own process group until the block ends; its output goes to `log`."""
    log.parent.mkdir(parents=True, exist_ok=True)
    guarded = [sys.executable, "-m", "workbook.servers.guard", str(os.getpid()), "--", *cmd]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with open(log, "wb") as out:
        process = subprocess.Popen(guarded, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   start_new_session=True, env=env)
    try:
        wait_listening(port, process, what)
        yield process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(10)


@contextmanager
def final_server(how: str, env: dict | None = None, project: Path = FINAL):
    server = Server(project, how=how, env=env, label=f"bench-final-{how}")
    server.start()
    try:
        yield server
    finally:
        server.stop()


# --- clients --------------------------------------------------------------------


def origin_of(url: str) -> str:
    return "http://" + url.split("://", 1)[1].split("/", 1)[0]


async def open_client(url: str, session: str | None = None):
    """Open a socket as a browser of the page would: its Origin and, when logged in, its session cookie."""
    return await connect(url, origin=origin_of(url), open_timeout=DEADLINE, max_size=2**20,
                         additional_headers=cookie(session) if session else None)


@dataclass
class RoomLoad:
    clients: int
    messages: int
    room_size: int
    connected: int = 0
    refused: dict = field(default_factory=dict)
    expected: int = 0
    received: int = 0
    errors: list = field(default_factory=list)
    connect_seconds: float = 0.0
    send_seconds: float = 0.0
    # Seconds from sending a message to seeing it come back, for every message of every client.
    round_trips: list = field(default_factory=list)

    @property
    def lost(self) -> int:
        return self.expected - self.received


async def _connect_all(urls: list[str], sessions: list[str], report: RoomLoad) -> list:
    async def one(url, session):
        try:
            return await open_client(url, session)
        except InvalidStatus as refused:
            status = refused.response.status_code
            report.refused[status] = report.refused.get(status, 0) + 1
        except (OSError, asyncio.TimeoutError, InvalidHandshake) as exc:
            report.errors.append(f"connect: {type(exc).__name__}: {exc}")
        return None

    return await asyncio.gather(*(one(url, sessions[i % len(sessions)]) for i, url in enumerate(urls)))


async def _talk(ws, name: str, messages: int, expected: set[str], report: RoomLoad, deadline: float) -> None:
    """Send `messages` messages, each after the previous one came back; then read until the room is heard."""
    seen: set[str] = set()

    async def read_until(done) -> None:
        while not done():
            data = json.loads(await asyncio.wait_for(ws.recv(), deadline - time.monotonic()))
            if "message" in data:
                seen.add(data["message"])
            else:
                report.errors.append(f"{name}: {data}")

    try:
        for k in range(messages):
            mine = f"{name}:{k}"
            sent = time.monotonic()
            await ws.send(json.dumps({"message": mine}))
            await read_until(lambda mine=mine: mine in seen)
            report.round_trips.append(time.monotonic() - sent)
        await read_until(lambda: expected <= seen)
    except (ConnectionClosed, asyncio.TimeoutError, ValueError) as exc:
        report.errors.append(f"{name}: {type(exc).__name__} {exc}")
    report.received += len(seen & expected)


async def room_load(urls: list[str], clients: int, messages: int, room_size: int, sessions: list[str],
                    tag: str, patience: float = DEADLINE) -> RoomLoad:
    """Connect `clients` at once into rooms of `room_size`, spread over `urls`; each sends `messages` messages."""
    report = RoomLoad(clients, messages, room_size)
    # Rooms new to this run: a room's history would be replayed to whoever joins it.
    rooms = [f"bench-{tag}-{i // room_size}" for i in range(clients)]
    targets = [f"{urls[i % len(urls)]}{rooms[i]}/" for i in range(clients)]
    started = time.monotonic()
    sockets = await _connect_all(targets, sessions, report)
    report.connect_seconds = time.monotonic() - started
    report.connected = sum(ws is not None for ws in sockets)
    members: dict[str, list[int]] = {}
    for i, ws in enumerate(sockets):
        if ws is not None:
            members.setdefault(rooms[i], []).append(i)
    deadline = time.monotonic() + patience
    started = time.monotonic()
    jobs = []
    for everyone in members.values():
        expected = {f"c{i}:{k}" for i in everyone for k in range(messages)}
        report.expected += len(expected) * len(everyone)
        jobs += [_talk(sockets[i], f"c{i}", messages, expected, report, deadline) for i in everyone]
    await asyncio.gather(*jobs)
    report.send_seconds = time.monotonic() - started
    await asyncio.gather(*(ws.close() for ws in sockets if ws is not None))
    return report


async def echo_rate(urls: list[str], seconds: float, frame: str, sessions: list[str] | None = None) -> float:
    """Round trips per second over one socket per URL, each sending its next frame when the last came back."""
    sessions = sessions or [None]
    sockets = await asyncio.gather(*(open_client(url, sessions[i % len(sessions)]) for i, url in enumerate(urls)))
    count = 0

    async def loop(ws, until):
        nonlocal count
        while time.monotonic() < until:
            await ws.send(frame)
            await asyncio.wait_for(ws.recv(), DEADLINE)
            count += 1

    warm = time.monotonic() + min(1.0, seconds / 5)
    await asyncio.gather(*(loop(ws, warm) for ws in sockets))
    count = 0
    started = time.monotonic()
    await asyncio.gather(*(loop(ws, started + seconds) for ws in sockets))
    rate = count / (time.monotonic() - started)
    await asyncio.gather(*(ws.close() for ws in sockets))
    return rate


async def idle_memory(server: Server, url: str, connections: int, sessions: list[str]) -> tuple[float, int]:
    """Open `connections` idle sockets; return (KiB of server RSS per socket, total RSS in KiB)."""
    warm = await open_client(url, sessions[0])
    await warm.close()
    before = group_rss_kib(server.pid)
    sockets = []
    for start in range(0, connections, 100):
        sockets += await asyncio.gather(*(open_client(url, sessions[(start + k) % len(sessions)])
                                          for k in range(min(100, connections - start))))
    await asyncio.sleep(1)  # let the server finish any per-connection work before reading RSS
    after = group_rss_kib(server.pid)
    await asyncio.gather(*(ws.close() for ws in sockets))
    return (after - before) / connections, after


# --- the run ----------------------------------------------------------------------


def machine() -> dict:
    meminfo = Path("/proc/meminfo").read_text().split("\n", 1)[0] if Path("/proc/meminfo").exists() else ""
    ram_gib = int(meminfo.split()[1]) / 2**20 if meminfo else 0
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    redis = shutil.which("redis-server")
    if redis:
        out = subprocess.run([redis, "--version"], capture_output=True, text=True).stdout
        versions["redis-server"] = next((w.split("=")[1] for w in out.split() if w.startswith("v=")), out.strip())
    return {
        "cpus": os.cpu_count(),
        "ram": f"{ram_gib:.1f} GiB",
        "system": f"{platform.system()} {platform.release()} {platform.machine()}",
        "python": platform.python_version(),
        "versions": versions,
        "load": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


def echo_server(port: int):
    code = Path(__file__).with_name("_echo_server.py")
    log = ROOT / ".workbook" / "logs" / f"bench-echo-{port}.log"
    return background([sys.executable, str(code), str(port)], port, "the raw websockets echo server", log)


# How each server runs final/: uvicorn as FINAL.md's production command, without per-message compression.
SERVER_ENV = {"daphne": {}, "uvicorn": {"UVICORN_WS_PER_MESSAGE_DEFLATE": "false"}}
# The switch that turns saving (and replaying) messages off, to show what the database costs.
SAVE_OFF = {"CHAT_HISTORY": "off"}
NO_RATE_LIMIT = {"CHAT_MESSAGES_PER_SECOND": "0"}
# Step 07's layer settings, for --before: channels_redis' own pool and capacity.
STEP_07_LAYER = """from mychannels.settings import *  # noqa: F403

_config = CHANNEL_LAYERS['default']['CONFIG']  # noqa: F405
CHANNEL_LAYERS['default']['BACKEND'] = 'channels_redis.core.RedisChannelLayer'  # noqa: F405
_config.pop('capacity')
_config['hosts'][0].pop('max_connections')
_config['hosts'][0].pop('timeout')
"""


def db_cost(rows: list[dict]) -> dict:
    """For each layer measured with the save on and off: the time to deliver and the round trip, on / off."""
    by_layer = {row["layer"]: row for row in rows}
    cost = {}
    for layer, on in by_layer.items():
        off = by_layer.get(f"{layer}, save off")
        # A row that lost clients at the handshake carried less load: its time is no price of the database.
        if off and on["connected"] == off["connected"] == on["clients"] and not on["lost"] and not off["lost"]:
            cost[layer] = {"deliver": on["deliver_s"] / off["deliver_s"],
                           "rtt_median": on["rtt_median_s"] / off["rtt_median_s"],
                           "rtt_p99": on["rtt_p99_s"] / off["rtt_p99_s"]}
    return cost


def run(args) -> dict:
    results: dict = {"machine": machine(), "args": {k: str(v) for k, v in vars(args).items()},
                     "load": [], "db_cost": {}, "echo": {}, "memory": {}, "trace": {}}
    results["open_files"] = raise_open_files(max(4096, args.clients * 4 + 1024))
    frame = json.dumps({"message": "x" * 64})
    log = print if not args.quiet else (lambda *a, **k: None)
    # Every client is a logged-in user of a fresh database that all the servers of this run share.
    python = Server(args.project, port=1).command()[0]
    database, sessions = logged_in(args.project, python, max(args.clients, args.echo_connections))

    def server_env(how: str, **extra: str) -> dict:
        return {**database, **SERVER_ENV[how], **extra}

    def load(layer: str, servers: list[Server], patience: float = DEADLINE) -> None:
        report = asyncio.run(room_load([s.ws_url("/ws/chat/") for s in servers], args.clients, args.messages,
                                       args.room_size, sessions, str(len(results["load"])), patience))
        row = {"layer": layer, "server": f"{servers[0].how} ×{len(servers)}", **_load_row(report)}
        results["load"].append(row)
        log(f"load   {row}")

    if "load" in args.parts:
        for how in args.servers:
            with final_server(how, server_env(how), args.project) as server:
                load("in-memory", [server])
        if args.db_cost:
            with final_server("daphne", server_env("daphne", **SAVE_OFF), args.project) as server:
                load("in-memory, save off", [server])
        if args.redis and binary() is None:
            print(f"bench: skipping the Redis rows, redis-server is not installed: {GET_REDIS}", file=sys.stderr)
        elif args.redis:
            redis_runs = [("redis", {}), *([("redis, save off", SAVE_OFF)] if args.db_cost else [])]
            if args.before:
                overlay = ROOT / ".workbook" / "bench-step07-layer"
                overlay.mkdir(parents=True, exist_ok=True)
                (overlay / "step07_layer.py").write_text(STEP_07_LAYER)
                redis_runs.insert(0, ("redis, step 07's settings", {
                    "PYTHONPATH": str(overlay), "DJANGO_SETTINGS_MODULE": "step07_layer"}))
            for layer, extra in redis_runs:
                with RedisServer() as redis, ExitStack() as stack:
                    env = server_env("daphne", REDIS_URL=redis.url, **extra)
                    servers = [stack.enter_context(final_server("daphne", env, args.project)) for _ in range(2)]
                    # Step 07's settings lose messages for good: waiting the full deadline would add nothing.
                    load(layer, servers, 60 if "step 07" in layer else DEADLINE)
        results["db_cost"] = db_cost(results["load"])

    if "echo" in args.parts:
        def raw_rate() -> float:
            port = free_port()
            with echo_server(port):
                return asyncio.run(echo_rate([f"ws://127.0.0.1:{port}/"] * args.echo_connections, args.seconds, frame))

        def final_rate(how: str) -> float:
            # Each socket sends as fast as its replies come back: the rate limit would turn most of them away.
            with final_server(how, server_env(how, **NO_RATE_LIMIT), args.project) as server:
                # Each socket is alone in its room: its message comes back to it through the channel layer.
                urls = [server.ws_url(f"/ws/chat/echo-{i}/") for i in range(args.echo_connections)]
                return asyncio.run(echo_rate(urls, args.seconds, frame, sessions))

        # Rounds of raw, then each server, back to back: a ratio compares measurements seconds apart, and the
        # median over rounds keeps one disturbed round (this machine is shared) from deciding the figure.
        rounds = []
        for _ in range(args.rounds):
            raw = raw_rate()
            rounds.append({"raw websockets": (raw, 1.0), **{
                f"final on {how}": (rate, rate / raw) for how in args.servers for rate in [final_rate(how)]}})
            log(f"echo   {rounds[-1]}")
        for name in rounds[0]:
            rates = sorted(r[name][0] for r in rounds)
            ratios = sorted(r[name][1] for r in rounds)
            results["echo"][name] = {"rate": rates[len(rates) // 2], "ratio": ratios[len(ratios) // 2],
                                     "ratios": [round(r[name][1], 3) for r in rounds]}

    if "trace" in args.parts:
        # Both servers run side by side, as `make step-4 run` serves them (runserver, minus the reloader), and the
        # rounds alternate which goes first. On a shared machine the rate swings with the neighbours' load; the
        # server's own CPU time per round trip hardly does, so both are reported.
        with Server(get_step(4), label="bench-step04-plain") as plain, \
                Server(get_step(4), trace=True, label="bench-step04-trace") as traced:
            def measure(server: Server) -> tuple[float, float]:
                cpu = group_cpu_seconds(server.pid)
                rate = asyncio.run(echo_rate([server.ws_url()] * args.echo_connections, args.seconds, frame))
                return rate, (group_cpu_seconds(server.pid) - cpu) * 1000 / (rate * args.seconds)

            rounds = []
            for k in range(args.rounds):
                first, second = (plain, traced) if k % 2 == 0 else (traced, plain)
                measured = {first: measure(first), second: measure(second)}
                rounds.append((*measured[plain], *measured[traced]))
                rate_plain, cpu_plain, rate_traced, cpu_traced = rounds[-1]
                log(f"trace  step 04: {rate_plain:.0f} round trips/s plain, {rate_traced:.0f} traced; CPU per round "
                    f"trip {cpu_plain:.2f} ms plain, {cpu_traced:.2f} ms traced")

        def median(values):
            return sorted(values)[len(values) // 2]

        results["trace"] = {
            "plain": median([r[0] for r in rounds]), "traced": median([r[2] for r in rounds]),
            "ratio": median([r[2] / r[0] for r in rounds]), "ratios": [round(r[2] / r[0], 3) for r in rounds],
            "cpu_plain_ms": median([r[1] for r in rounds]), "cpu_traced_ms": median([r[3] for r in rounds]),
            "cpu_ratio": median([r[3] / r[1] for r in rounds]),
        }

    if "memory" in args.parts:
        variants = [(how, server_env(how), how) for how in args.servers]
        if "uvicorn" in args.servers:
            variants.append(("uvicorn", database, "uvicorn, per-message deflate on (its default)"))
        for how, env, name in variants:
            with final_server(how, env, args.project) as server:
                per, total = asyncio.run(idle_memory(server, server.ws_url("/ws/chat/idle/"), args.clients, sessions))
            results["memory"][name] = {"per_connection_kib": per, "total_mib": total / 1024}
            log(f"memory {name}: {per:.1f} KiB per idle connection ({total / 1024:.0f} MiB in all)")
    return results


START, END = "<!-- results: written by `make bench` -->", "<!-- end of results -->"


def results_markdown(results: dict) -> str:
    """Render the measured figures, the machine and the command as Markdown."""
    m, a = results["machine"], results["args"]
    versions = ", ".join(f"{name} {version}" for name, version in m["versions"].items())
    lines = [
        START,
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {m['cpus']} CPUs, {m['ram']} RAM, "
        f"{m['system']}, Python {m['python']} (load average {m['load']} at the start).",
        f"Versions: {versions}.",
        "",
        f"Command: `make bench` (`python -m workbook bench load --write --before`); this run: "
        f"`{' '.join(['python', 'bench/load.py', *sys.argv[1:]])}`.",
        "",
    ]
    if results["load"]:
        lines += [
            f"### {a['clients']} clients × {a['messages']} messages, rooms of {a['room_size']}, all connecting at once",
            "",
            "| layer | servers | accepted | refused | deliveries expected | lost | errors | connect | deliver "
            "| round trip median / p99 / max |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for row in results["load"]:
            refused = ", ".join(f"{n} × HTTP {code}" for code, n in row["refused"].items()) or "0"
            lines.append(
                f"| {row['layer']} | {row['server']} | {row['connected']} | {refused} | {row['expected']} | "
                f"{row['lost']} | {row['errors']} | {row['connect_s']:.1f} s | {row['deliver_s']:.1f} s | "
                f"{row['rtt_median_s']:.2f} / {row['rtt_p99_s']:.2f} / {row['rtt_max_s']:.2f} s |"
            )
        lines.append("")
    if results.get("db_cost"):
        lines += [
            "### What the database costs: every message saved, as a ratio to the same load with the save off",
            "",
            "| layer | time to deliver | round trip median | round trip p99 |",
            "|---|---:|---:|---:|",
        ]
        lines += [f"| {layer} | {c['deliver']:.2f}× | {c['rtt_median']:.2f}× | {c['rtt_p99']:.2f}× |"
                  for layer, c in results["db_cost"].items()]
        lines.append("")
    if results["echo"]:
        lines += [
            f"### Echo round trips per second at {a['echo_connections']} connections, {a['seconds']} s (goal ≥ 0.25×)",
            "",
            f"Median of {a['rounds']} rounds; each round measures the raw server, then each server of final.",
            "",
            "| server | round trips/s | ratio to raw websockets | ratio in each round |",
            "|---|---:|---:|---|",
        ]
        lines += [f"| {name} | {v['rate']:.0f} | {v['ratio']:.2f}× | {', '.join(f'{r:.2f}' for r in v['ratios'])} |"
                  for name, v in results["echo"].items()]
        lines.append("")
    if results.get("trace"):
        t = results["trace"]
        lines += [
            f"### The cost of `run --trace`: step 04 under runserver, {a['echo_connections']} connections, "
            f"{a['seconds']} s",
            "",
            f"Median of {a['rounds']} rounds; each measures both servers, running side by side, in alternating order.",
            "",
            "| step 04 | round trips/s | rate ratio to untraced | ratio in each round | server CPU per round trip "
            "| CPU ratio |",
            "|---|---:|---:|---|---:|---:|",
            f"| without --trace | {t['plain']:.0f} | 1.00× | | {t['cpu_plain_ms']:.2f} ms | 1.00× |",
            f"| with --trace | {t['traced']:.0f} | {t['ratio']:.2f}× | {', '.join(f'{r:.2f}' for r in t['ratios'])} "
            f"| {t['cpu_traced_ms']:.2f} ms | {t['cpu_ratio']:.2f}× |",
            "",
        ]
    if results["memory"]:
        lines += [
            f"### Memory per idle connection, {a['clients']} connections (goal ≤ 35 KiB)",
            "",
            "| server | KiB per connection | server RSS with all connected |",
            "|---|---:|---:|",
        ]
        lines += [f"| {name} | {v['per_connection_kib']:.1f} | {v['total_mib']:.0f} MiB |"
                  for name, v in results["memory"].items()]
        lines.append("")
    return "\n".join([*lines, END])


def write_doc(results: dict, doc: Path, start: str = START, end: str = END, section: str | None = None) -> None:
    """Replace the section of `doc` between `start` and `end` (the load results), keeping the prose around it."""
    text = doc.read_text(encoding="utf-8") if doc.exists() else f"# Benchmarks\n\n{start}\n{end}\n"
    if start not in text or end not in text:
        text = f"{text.rstrip()}\n\n{start}\n{end}\n"
    head, rest = text.split(start, 1)
    tail = rest.split(end, 1)[1]
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text(head + (section or results_markdown(results)) + tail, encoding="utf-8")


def _spread(samples: list[float]) -> dict:
    ordered = sorted(samples) or [float("nan")]
    return {"rtt_median_s": ordered[len(ordered) // 2], "rtt_p99_s": ordered[int(len(ordered) * 0.99)],
            "rtt_max_s": ordered[-1]}


def _load_row(report: RoomLoad) -> dict:
    return {
        "clients": report.clients, "connected": report.connected, "refused": report.refused,
        "messages": report.clients * report.messages, "expected": report.expected,
        "received": report.received, "lost": report.lost, "errors": len(report.errors),
        "first_errors": report.errors[:3], "connect_s": round(report.connect_seconds, 2),
        "deliver_s": round(report.send_seconds, 2), **_spread(report.round_trips),
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench/load.py", description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=1000, help="concurrent clients (default 1000)")
    parser.add_argument("--messages", type=int, default=20, help="messages each client sends (default 20)")
    parser.add_argument("--room-size", type=int, default=10, help="clients per room (default 10)")
    parser.add_argument("--echo-connections", type=int, default=100, help="sockets in the echo test (default 100)")
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each echo measurement (default 5)")
    parser.add_argument("--rounds", type=int, default=3, help="echo rounds, the median is reported (default 3)")
    parser.add_argument("--servers", nargs="*", default=["daphne", "uvicorn"], choices=["daphne", "uvicorn"])
    parser.add_argument("--parts", nargs="+", default=["load", "echo", "trace", "memory"],
                        choices=["load", "echo", "trace", "memory"])
    parser.add_argument("--no-redis", dest="redis", action="store_false", help="skip the Redis layer")
    parser.add_argument("--before", action="store_true",
                        help="also run the Redis load with step 07's layer settings, to show why final changes them")
    parser.add_argument("--no-db-cost", dest="db_cost", action="store_false",
                        help="skip the load rows with the save off (CHAT_HISTORY=off) that price the database")
    parser.add_argument("--project", type=Path, default=FINAL, help="the project to measure (default final/)")
    parser.add_argument("--json", metavar="FILE", help="also write the raw results as JSON")
    parser.add_argument("--write", action="store_true", help=f"rewrite {DOC.relative_to(ROOT)} with the results")
    parser.add_argument("--quiet", action="store_true")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    results = run(args)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    if args.write:
        write_doc(results, DOC)
        print(f"bench: wrote {DOC.relative_to(ROOT)}")
    if not args.quiet:
        print(results_markdown(results))
    final_rows = [row for row in results["load"] if "step 07" not in row["layer"]]
    failed = [row for row in final_rows if row["lost"] or row["errors"] or row["connected"] < row["clients"]]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
