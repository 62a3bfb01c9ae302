"""Measure how long each notebook takes to execute headless under nbclient (target: 8 s each).

Run: `.venv/bin/python bench/notebooks.py [--runs 3]` from the repository root.
Prints a Markdown table: kernel start to shutdown, best and median of the runs. Nothing here is a test.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from workbook.notebooks import jupyter  # noqa: E402

TARGET = 8.0


def measure(path: Path, runs: int) -> list[float]:
    """Execute the notebook `runs` times, each on a fresh kernel; return the wall times."""
    times = []
    for _ in range(runs):
        started = time.monotonic()
        jupyter.execute(path)
        times.append(time.monotonic() - started)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="executions per notebook (default 3)")
    args = parser.parse_args()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"Notebook execution under nbclient, {args.runs} run(s) each, {os.cpu_count()} CPUs, "
          f"load average {load:.1f} at start\n")
    print(f"| notebook | best (s) | median (s) | ≤ {TARGET:.0f} s |")
    print("|---|---:|---:|---|")
    slow = 0
    for path in jupyter.notebooks():
        if not path.exists():
            print(f"| {path.stem} | — | — | missing |")
            continue
        times = measure(path, args.runs)
        median = statistics.median(times)
        slow += median > TARGET
        print(f"| {path.stem} | {min(times):.1f} | {median:.1f} | {'yes' if median <= TARGET else 'NO'} |", flush=True)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"\nload average {load:.1f} at the end; {slow} notebook(s) over the target")
    return 0


if __name__ == "__main__":
    sys.exit(main())
