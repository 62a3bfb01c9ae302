"""Measure what a learner waits for: cold set-up, server start, first echo, and optionally `make test`.

Run: `python bench/setup_and_start.py [--cold-cache] [--with-tests] [--startup]` (from the repository root, any python).
Prints a Markdown table. Nothing here is a test: numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def clone(into: Path) -> Path:
    """Clone the committed HEAD, as a learner's fresh checkout."""
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(into)], check=True)
    return into


def timed(cmd: list[str], cwd: Path, env: dict | None = None) -> float:
    started = time.monotonic()
    subprocess.run(cmd, cwd=cwd, env={**os.environ, **(env or {})}, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.monotonic() - started


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def first_echo(port: int, deadline: float) -> None:
    from websockets.asyncio.client import connect

    while True:
        try:
            async with connect(f"ws://127.0.0.1:{port}/ws/chat/", open_timeout=2) as ws:
                await ws.send('{"message": "ping"}')
                await ws.recv()
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.02)


def make_run_to_first_echo(checkout: Path, step: int = 4, env: dict | None = None) -> float:
    """Time from typing `make step-N run` to the first echo arriving."""
    port = free_port()
    env = {**os.environ, **(env or {}), "PORT": str(port)}
    started = time.monotonic()
    process = subprocess.Popen(["make", f"step-{step}", "run"], cwd=checkout, env=env, start_new_session=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        asyncio.run(first_echo(port, started + 300))
        return time.monotonic() - started
    finally:
        os.killpg(process.pid, signal.SIGINT)
        process.wait(30)


def hand_runserver_to_first_echo(checkout: Path, step: str = "04-routing") -> float:
    """Time from typing `python manage.py runserver` in the step (venv active) to the first echo arriving."""
    port = free_port()
    python = checkout / ".venv" / "bin" / "python"
    started = time.monotonic()
    process = subprocess.Popen([str(python), "manage.py", "runserver", f"127.0.0.1:{port}"],
                               cwd=checkout / "steps" / step,
                               start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        asyncio.run(first_echo(port, started + 300))
        return time.monotonic() - started
    finally:
        os.killpg(process.pid, signal.SIGINT)
        process.wait(30)


def with_cpu(run, *args) -> tuple[float, float]:
    """Run a start-to-echo timing; return (wall seconds, CPU seconds of every process it started, stop included)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall = run(*args)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)


def startup_ratio(checkout: Path, repeats: int) -> dict[str, tuple[float, float]]:
    """Median (wall, CPU) to the first echo, `make step-4 run` and runserver by hand, taken in turns in one run."""
    make_run_to_first_echo(checkout)  # the first run may migrate and fill caches: not counted
    runs: dict[str, list[tuple[float, float]]] = {"make": [], "hand": []}
    for _ in range(repeats):
        runs["make"].append(with_cpu(make_run_to_first_echo, checkout))
        runs["hand"].append(with_cpu(hand_runserver_to_first_echo, checkout))
    found = {kind: (statistics.median(w for w, _ in values), statistics.median(c for _, c in values))
             for kind, values in runs.items()}
    # Each pair ran back to back, so the median of the pairs' ratios is the least moved by load that comes and goes.
    found["pairs"] = (statistics.median(m / h for (m, _), (h, _) in zip(runs["make"], runs["hand"], strict=True)),
                      0.0)
    return found


def print_startup(checkout: Path, repeats: int) -> None:
    # CPU seconds barely move with other load on the machine, wall seconds do: both are shown.
    found = startup_ratio(checkout, repeats)
    (make_wall, make_cpu), (hand_wall, hand_cpu) = found["make"], found["hand"]
    print(f"| `make step-4 run` → first echo (median of {repeats}, in turns with the next row) | {make_wall:.2f} |")
    print(f"| `python manage.py runserver` in steps/04-routing by hand → first echo | {hand_wall:.2f} |")
    print(f"| the runner's ratio to the hand run, wall: medians / median of the pairs (goal ≤ 1.10) | "
          f"{make_wall / hand_wall:.2f} / {found['pairs'][0]:.2f} |")
    print(f"| CPU seconds, every process of the run (stop included): make step-4 run / by hand | "
          f"{make_cpu:.2f} / {hand_cpu:.2f} = {make_cpu / hand_cpu:.2f} |")


def migration_cost(checkout: Path, repeats: int = 3) -> dict[str, float]:
    """Median `make step-4 run` → first echo: unmigrated and not migrating, migrating a fresh db, and a rerun."""
    database = checkout / "steps" / "04-routing" / "db.sqlite3"
    times: dict[str, list[float]] = {"off": [], "fresh": [], "again": []}
    for _ in range(repeats):
        database.unlink(missing_ok=True)
        times["off"].append(make_run_to_first_echo(checkout, env={"WORKBOOK_MIGRATE": "0"}))
        database.unlink(missing_ok=True)  # runserver's migration check left an empty one
        times["fresh"].append(make_run_to_first_echo(checkout))
        times["again"].append(make_run_to_first_echo(checkout))
    return {kind: statistics.median(values) for kind, values in times.items()}


def server_starts() -> list[tuple[str, str, float]]:
    from workbook import Server, load_steps

    rows = []
    for step in load_steps():
        for how in ("runserver", "daphne"):
            started = time.monotonic()
            with Server(step, how=how):
                rows.append((step.id, how, time.monotonic() - started))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cold-cache", action="store_true", help="also set up with an empty uv cache")
    parser.add_argument("--repeats", type=int, default=3, help="runs per figure of the migration cost (median)")
    parser.add_argument("--with-tests", action="store_true", help="also time `make test` in the fresh clone")
    parser.add_argument("--startup", action="store_true",
                        help="only compare `make step-4 run` with runserver by hand, in this checkout (.venv ready)")
    args = parser.parse_args()
    print(f"machine: {platform.platform()}, {os.cpu_count()} cores, python {platform.python_version()}\n")
    print("| what | seconds |\n|---|---|")
    if args.startup:
        print_startup(ROOT, max(args.repeats, 5))
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        checkout = clone(Path(tmp) / "checkout")
        python = shutil.which("python3") or sys.executable
        base = timed([python, "-m", "workbook", "setup"], checkout)
        print(f"| cold set-up of a fresh clone, base lock (`python -m workbook setup`) | {base:.1f} |")
        dev = timed([python, "-m", "workbook", "setup", "--dev"], checkout)
        print(f"| then the dev lock on top (`make setup`) | {dev:.1f} |")
        print(f"| `make step-4 run` → first echo (venv ready, migrates db.sqlite3) | "
              f"{make_run_to_first_echo(checkout):.2f} |")
        cost = migration_cost(checkout, args.repeats)
        print(f"| the same with WORKBOOK_MIGRATE=0 (no migration; median of {args.repeats}) | {cost['off']:.2f} |")
        print(f"| the same on an unmigrated db: auto-migration adds | {cost['fresh'] - cost['off']:+.2f} |")
        print(f"| the same again, db migrated (stamp check only): auto-migration adds | "
              f"{cost['again'] - cost['off']:+.2f} |")
        print_startup(checkout, args.repeats)
        if args.cold_cache:
            fresh = clone(Path(tmp) / "cold")
            # A learner's machine: no uv installed (the runner pip-installs it into .venv) and an empty cache.
            no_uv = os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if not (Path(p) / "uv").exists())
            real_python = subprocess.run([python, "-c", "import sys; print(sys.executable)"],
                                         capture_output=True, text=True, check=True).stdout.strip()
            env = {"UV_CACHE_DIR": str(Path(tmp) / "uv"), "PATH": no_uv}
            cold = timed([real_python, "-m", "workbook", "setup"], fresh, env=env)
            print(f"| cold set-up, no uv installed, empty package cache (downloads included) | {cold:.1f} |")
        second = clone(Path(tmp) / "second")
        first = make_run_to_first_echo(second)
        print(f"| `make step-4 run` → first echo on a fresh clone (set-up included) | {first:.2f} |")
        if args.with_tests:
            wall = timed(["make", "test"], checkout)
            print(f"| `make test` wall time | {wall:.0f} |")
    print()
    print("| step | server | start → listening (s) |\n|---|---|---|")
    for step_id, how, seconds in server_starts():
        print(f"| {step_id} | {how} | {seconds:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
