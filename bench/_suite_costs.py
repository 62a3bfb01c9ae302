"""Where a suite run's time goes: CPU-seconds by kind of process (sampled from /proc), and each step's share.

Used by bench/suite.py --where. The suite is CPU-bound on a 2-core machine, so the wall time follows the CPU
work; this shows which processes do it (servers, manage.py commands, browsers, kernels, venv set-ups) and how much
of the test time each step's tests take. Linux only (it reads /proc). Not a test.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import re
import threading
import time
import xml.etree.ElementTree as ET
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
# Kinds of process, first match wins: (name, pattern searched in the command line).
KINDS = [
    ("pytest (controller and workers)", r"-m workbook test|execnet|exec\(eval\(sys\.stdin"),
    ("the runner's guard", r"-m workbook\.servers\.guard"),
    ("runserver", r"manage\.py runserver"),
    ("daphne CLI", r"-m daphne|/daphne "),
    ("uvicorn", r"-m uvicorn"),
    ("manage.py test", r"manage\.py test"),
    ("manage.py, other commands", r"manage\.py "),
    ("migrate (the runner's)", r"call_command\(\"migrate\""),
    ("learner checks: facts probe", r"workbook\.learner\.probe"),
    ("in-process consumer drive", r"workbook\.communicator"),
    ("doctor inspector", r"inspector\.py"),
    ("venv set-up (uv, bytecode)", r"\buv\b|pip_compileall|-m pip"),
    ("Chromium", r"chrom"),
    ("Playwright driver", r"run-driver"),
    ("Jupyter kernel", r"ipykernel"),
    ("redis-server", r"redis-server"),
    ("other Python", r"python"),
]


def kind_of(command: str) -> str:
    return next((name for name, pattern in KINDS if re.search(pattern, command)), "other")


class Sampler:
    """Read every process's CPU time from /proc a few times a second, in a thread, while the suite runs.

    A process is counted from its first sample to its last: one that lives less than the interval is missed, and
    the CPU a process had used before the sampler started is left out.
    """

    def __init__(self, interval: float = 0.25):
        self.interval, self.seen, self.baseline = interval, {}, {}
        self.cwd: dict[tuple[str, str], str] = {}  # each process's working directory (which step it served)
        self.busy: list[tuple[float, float]] = []  # (seconds since the start, share of all CPUs busy since the last)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _read(self) -> dict[tuple[str, str], tuple[str, float]]:
        found = {}
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                stat = Path(f"/proc/{pid}/stat").read_text()
                fields = stat[stat.rindex(")") + 2:].split()
                cpu = (int(fields[11]) + int(fields[12])) / TICKS
                key = (pid, fields[19])  # pid and start time: a reused pid is another process
                command = self.seen.get(key, (None,))[0] or self.baseline.get(key, (None,))[0]
                if command is None:
                    command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                    with contextlib.suppress(OSError):
                        self.cwd.setdefault(key, os.readlink(f"/proc/{pid}/cwd"))
                found[key] = (command, cpu)
            except (OSError, ValueError, IndexError):
                continue
        return found

    def _loop(self) -> None:
        started, last = time.monotonic(), _cpu_times()
        while not self._stop.wait(self.interval):
            for key, value in self._read().items():
                if key not in self.baseline:
                    self.seen[key] = value
            now = _cpu_times()
            busy, total = now[0] - last[0], now[1] - last[1]
            self.busy.append((round(time.monotonic() - started, 2), round(busy / total, 3) if total else 0.0))
            last = now

    def __enter__(self) -> Sampler:
        self.baseline = self._read()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def busy_seconds(self) -> float:
        """CPU-seconds the whole machine was busy while sampling: every process, short-lived ones included."""
        previous, total = 0.0, 0.0
        for at, share in self.busy:
            total += share * (at - previous) * (os.cpu_count() or 1)
            previous = at
        return total

    def idle_by_interval(self, width: float = 10.0) -> list[tuple[float, float]]:
        """(start of each `width`-second interval, share of the CPUs busy in it): where the run left CPUs idle."""
        buckets: dict[int, list[float]] = collections.defaultdict(list)
        for at, share in self.busy:
            buckets[int(at // width)].append(share)
        return [(index * width, sum(shares) / len(shares)) for index, shares in sorted(buckets.items())]

    def dump(self, path: Path) -> None:
        """Write every sampled process as JSON: [command, CPU-seconds, working directory], most CPU first."""
        rows = sorted(((*value, self.cwd.get(key, "")) for key, value in self.seen.items()), key=lambda row: -row[1])
        path.write_text(json.dumps([[command, round(seconds, 2), cwd] for command, seconds, cwd in rows], indent=0))

    def by_kind(self) -> list[tuple[str, int, float]]:
        """(kind, processes, CPU-seconds), most CPU first."""
        cpu, count = collections.Counter(), collections.Counter()
        for command, seconds in self.seen.values():
            kind = kind_of(command)
            cpu[kind] += seconds
            count[kind] += 1
        return [(kind, count[kind], seconds) for kind, seconds in cpu.most_common()]


# Modules that test one step, without that step's id in their test ids; and the Python range, counted apart.
MODULE_STEP = {"test_async_json": "08", "test_users": "09", "test_users_browser": "09", "test_users_seed": "09",
               "test_login": "09",
               "test_history": "10", "test_history_browser": "10", "test_checks_tests": "11",
               "test_final": "final", "test_pythons": "other Pythons", "test_debian": "other Pythons"}
STEP_ID = re.compile(r"(?<![\d.])(0[1-9]|1\d)-[a-z]|\[final\b|-final\b")


def step_of(module: str, name: str) -> str:
    found = STEP_ID.search(name)
    if found:
        return found.group(1) or "final"
    return MODULE_STEP.get(module, "not one step's")


def shares(junit: Path) -> list[tuple[str, int, float]]:
    """(step, tests, seconds of test time) from a pytest junit XML, in step order."""
    time_of, count = collections.Counter(), collections.Counter()
    for case in ET.parse(junit).iter("testcase"):
        step = step_of(case.get("classname", "").rsplit(".", 1)[-1], case.get("name", ""))
        time_of[step] += float(case.get("time") or 0)
        count[step] += 1
    return [(step, count[step], time_of[step]) for step in sorted(time_of, key=lambda s: (not s[0].isdigit(), s))]


def markdown(kinds: list[tuple[str, int, float]], steps: list[tuple[str, int, float]], wall: float,
             workers: int) -> str:
    total = sum(seconds for _, _, seconds in kinds)
    lines = [f"CPU sampled: {total:.0f} CPU-s in {wall:.0f} s of wall time ({os.cpu_count()} CPUs)", "",
             "| process kind | processes | CPU-s | share |", "|---|---|---|---|"]
    lines += [f"| {kind} | {n} | {seconds:.0f} | {seconds / total:.0%} |" for kind, n, seconds in kinds if total]
    test_time = sum(seconds for _, _, seconds in steps)
    lines += ["", f"Test time {test_time:.0f} s over {workers} workers; a step's wall share is its test time / "
              f"{workers}.", "", "| step | tests | test time | wall share |", "|---|---|---|---|"]
    lines += [f"| {step} | {n} | {seconds:.0f} s | {seconds / workers:.0f} s |" for step, n, seconds in steps]
    return "\n".join(lines)


def _cpu_times() -> tuple[float, float]:
    """(busy, total) jiffies of all CPUs since boot, from /proc/stat."""
    fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle and iowait
    return sum(fields) - idle, sum(fields)
