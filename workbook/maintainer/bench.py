"""`python -m workbook bench [SCRIPT] [ARGS…]`: run a benchmark script from bench/ (default: load, for final/)."""

from __future__ import annotations

import argparse
import subprocess
import sys

from ..errors import WorkbookError
from ..registry import ROOT

BENCH_DIR = ROOT / "bench"
# Some scripts drive Jupyter or a browser, so the command runs in the dev virtualenv.
DEV_COMMANDS = {"bench"}


def scripts() -> list[str]:
    """List the benchmark scripts in bench/, by name."""
    return sorted(path.stem for path in BENCH_DIR.glob("*.py") if not path.stem.startswith("_"))


def cmd_bench(args) -> int:
    """Run one benchmark script with the remaining arguments; return its exit code."""
    if args.script not in scripts():
        raise WorkbookError(f"there is no benchmark {args.script!r}: choose one of {', '.join(scripts())}")
    return subprocess.call([sys.executable, str(BENCH_DIR / f"{args.script}.py"), *args.bench_args], cwd=ROOT)


def add_commands(sub) -> None:
    """Add `bench`."""
    bench = sub.add_parser("bench", help="run a benchmark from bench/ (default `load`: final/ under 1000 clients)")
    bench.add_argument("script", nargs="?", default="load", help="load (default), or another script in bench/")
    bench.add_argument("bench_args", nargs=argparse.REMAINDER, help="arguments for the script (see its --help)")
    bench.set_defaults(func=cmd_bench)
