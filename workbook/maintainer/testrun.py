"""Build the pytest command line of `python -m workbook test`: in parallel when pytest-xdist is installed, and
`--fast` leaves out the kinds of test that need a notebook kernel, a browser, Redis or another Python."""

from __future__ import annotations

import importlib.util
import os

FAST = "not notebook and not browser and not redis and not debian and not pythons"
# Workers for pytest-xdist: a number, or `auto` (one more than the CPUs); WORKBOOK_TEST_WORKERS=0 runs in one process.
WORKERS = "WORKBOOK_TEST_WORKERS"
SLOWEST = 15  # `make test` names this many of the slowest tests


def default_workers() -> int:
    """One worker more than the CPUs this process may use.

    About a quarter of a worker's time goes to waiting (for a server to answer, a socket to close, a kernel to
    start) while the CPUs have work to spare: measured on 2 cores, a third worker took `make test` from 567 s to
    500 s and `make test-fast` from 278 s to 256 s (bench/suite.py).
    """
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return (cpus or 1) + 1


def _chooses_workers(args: list[str]) -> bool:
    """Tell whether the arguments already decide about xdist (-n N, --numprocesses, -p no:xdist, --dist)."""
    for index, arg in enumerate(args):
        if arg.startswith(("-n", "--numprocesses", "--dist", "-pno:xdist")):
            return True
        if arg == "-p" and args[index + 1:index + 2] == ["no:xdist"]:
            return True
    return False


def with_durations(args: list[str]) -> list[str]:
    """Add --durations (the slowest tests, printed at the end) unless the arguments choose their own."""
    return args if any(arg.startswith("--durations") for arg in args) else [f"--durations={SLOWEST}", *args]


def pytest_args(given: list[str], environ: dict[str, str] | None = None) -> list[str]:
    """Return the pytest arguments for `workbook test GIVEN…`: --fast turned into -m, workers added."""
    environ = os.environ if environ is None else environ
    args = [arg for arg in given if arg != "--fast"]
    if len(args) != len(given):
        marks = [args[i + 1] for i, arg in enumerate(args[:-1]) if arg == "-m"]
        args = [arg for i, arg in enumerate(args) if arg != "-m" and (i == 0 or args[i - 1] != "-m")]
        # A -m given with --fast narrows it further instead of replacing it.
        args = ["-m", " and ".join([f"({FAST})", *(f"({m})" for m in marks)]) if marks else FAST, *args]
    workers = environ.get(WORKERS, "auto").strip() or "auto"
    workers = str(default_workers()) if workers == "auto" else workers
    if workers != "0" and not _chooses_workers(args) and importlib.util.find_spec("xdist") is not None:
        # conftest.py puts the long kinds first; reordering groups by size would send them last.
        args = ["-n", workers, "--dist", "loadgroup", "--no-loadscope-reorder", *args]
    return args
