"""The suite's wall time: `make test` and `make test-fast`, timed from outside, as a learner or CI would see them.

Run: `.venv/bin/python bench/suite.py [fast] [full] [--runs 1] [--log-dir build/bench]` from the repository root.
Each target runs with its full output kept in LOG_DIR/<target>-<n>.log; the table gives the wall time, pytest's own
summary line and the 1-minute load average before and after (the machine may be shared: a high load means the
figure is an upper bound). WORKBOOK_TEST_WORKERS=3 (or 0: one process) sets pytest-xdist's workers. Not a test.

`--where` also says where the time went (Linux): the CPU-seconds of each kind of process the run started (sampled
from /proc: servers, manage.py commands, browsers, kernels, venv set-ups), and each step's share of the test time,
read from a junit XML the run writes beside its log (bench/_suite_costs.py).
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


def run(target: str, log: Path, env: dict[str, str] | None = None) -> tuple[float, int, str, str, str]:
    """Run `make TARGET` once; return the wall time, exit code, pytest's summary, and the load before and after."""
    before = load()
    started = time.monotonic()
    with open(log, "w") as out:
        code = subprocess.call(["make", "--no-print-directory", target], cwd=ROOT, stdout=out,
                               stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env={**os.environ, **(env or {})})
    wall = time.monotonic() - started
    found = SUMMARY.findall(log.read_text(errors="replace"))
    return wall, code, found[-1] if found else "no pytest summary", before, load()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("which", nargs="*", help="fast, full, or both (the default)")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--log-dir", type=Path, default=ROOT / "build" / "bench")
    parser.add_argument("--where", action="store_true", help="also the CPU by kind of process, and each step's share")
    args = parser.parse_args()
    unknown = set(args.which) - set(TARGETS)
    if unknown:
        parser.error(f"unknown target {', '.join(sorted(unknown))}: choose from fast, full")
    args.log_dir.mkdir(parents=True, exist_ok=True)
    rows, costs = [], []
    for which in args.which or ["fast", "full"]:
        target = TARGETS[which]
        for n in range(1, args.runs + 1):
            log = args.log_dir / f"{target}-{n}.log"
            print(f"bench: make {target} (run {n}, log {os.path.relpath(log, ROOT)}) …", file=sys.stderr, flush=True)
            if args.where:
                wall, code, summary, before, after, where = measured(target, log)
                costs.append(f"\n### make {target}, run {n}\n\n{where}")
            else:
                wall, code, summary, before, after = run(target, log)
            rows.append(f"| make {target} | {n} | {wall:.0f} s | {code} | {summary} | {before} → {after} |")
            print(rows[-1], file=sys.stderr, flush=True)
    print("| target | run | wall | exit | pytest | load (1 min) |")
    print("|---|---|---|---|---|---|")
    print("\n".join([*rows, *costs]))
    return 0


def measured(target: str, log: Path):
    """Run `make TARGET` under the /proc sampler, with a junit XML beside the log; add the costs table."""
    from _suite_costs import Sampler, markdown, shares

    junit = log.with_suffix(".xml")
    with Sampler() as sampler:
        wall, code, summary, before, after = run(target, log, {"PYTEST_ADDOPTS": f"--junitxml={junit}"})
    from workbook.maintainer.testrun import default_workers

    workers = os.environ.get("WORKBOOK_TEST_WORKERS", "auto").strip()
    workers = default_workers() if workers in {"", "auto"} else max(int(workers), 1)
    steps = shares(junit) if junit.exists() else []
    sampler.dump(log.with_suffix(".processes.json"))
    busy = " ".join(f"{share * 100:.0f}" for _, share in sampler.idle_by_interval())
    # The whole machine's busy time, short-lived processes included (the per-process sampler misses those).
    timeline = (f"\n\nCPU busy in all (/proc/stat, the whole machine): {sampler.busy_seconds():.0f} CPU-s.\n"
                f"CPUs busy (%), each 10 s of the run in turn: {busy}")
    return wall, code, summary, before, after, markdown(sampler.by_kind(), steps, wall, workers) + timeline


if __name__ == "__main__":
    sys.exit(main())
