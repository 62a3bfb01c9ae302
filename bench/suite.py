"""The suite's wall time: `make test` and `make test-fast`, timed from outside, as a learner or CI would see them.

Run: `.venv/bin/python bench/suite.py [fast] [full] [--runs 1] [--log-dir build/bench]` from the repository root.
Each target runs with its full output kept in LOG_DIR/<target>-<n>.log; the table gives the wall time, pytest's own
summary line and the 1-minute load average before and after (the machine may be shared: a high load means the
figure is an upper bound). WORKBOOK_TEST_WORKERS=3 (or 0: one process) sets pytest-xdist's workers. Not a test.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGETS = {"fast": "test-fast", "full": "test"}
SUMMARY = re.compile(r"^=+ (.*\d+ (?:passed|failed|error).*) in [\d.]+s.*=+$", re.M)


def load() -> str:
    return f"{os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else "?"


def run(target: str, log: Path) -> tuple[float, int, str, str, str]:
    """Run `make TARGET` once; return the wall time, exit code, pytest's summary, and the load before and after."""
    before = load()
    started = time.monotonic()
    with open(log, "w") as out:
        code = subprocess.call(["make", "--no-print-directory", target], cwd=ROOT, stdout=out,
                               stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    wall = time.monotonic() - started
    found = SUMMARY.findall(log.read_text(errors="replace"))
    return wall, code, found[-1] if found else "no pytest summary", before, load()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("which", nargs="*", help="fast, full, or both (the default)")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--log-dir", type=Path, default=ROOT / "build" / "bench")
    args = parser.parse_args()
    unknown = set(args.which) - set(TARGETS)
    if unknown:
        parser.error(f"unknown target {', '.join(sorted(unknown))}: choose from fast, full")
    args.log_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for which in args.which or ["fast", "full"]:
        target = TARGETS[which]
        for n in range(1, args.runs + 1):
            log = args.log_dir / f"{target}-{n}.log"
            print(f"bench: make {target} (run {n}, log {log.relative_to(ROOT)}) …", file=sys.stderr, flush=True)
            wall, code, summary, before, after = run(target, log)
            rows.append(f"| make {target} | {n} | {wall:.0f} s | {code} | {summary} | {before} → {after} |")
            print(rows[-1], file=sys.stderr, flush=True)
    print("| target | run | wall | exit | pytest | load (1 min) |")
    print("|---|---|---|---|---|---|")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
