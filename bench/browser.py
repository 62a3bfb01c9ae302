"""Measure the browser side: Chromium start, page load to first echo, and the browser tests' wall time.

Run: `python bench/browser.py [--rounds N] [--no-tests]` from the repository root, with the dev virtualenv.
Prints a Markdown table. Nothing here is a test: numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from workbook import browser  # noqa: E402
from workbook.servers.server import Server  # noqa: E402


def load_to_first_echo(chromium, url: str) -> tuple[float, float]:
    """Open the page in a fresh context; return seconds until the socket is open and until the first echo."""
    started = time.monotonic()
    page = browser.open_page(chromium, url)
    opened = time.monotonic() - started
    browser.send_from_form(page, "ping")
    browser.wait_received(page, 1)
    echoed = time.monotonic() - started
    page.context.close()
    return opened, echoed


def browser_tests() -> tuple[float, str]:
    """Run the browser tests once; return the wall time and pytest's summary line."""
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-m", "browser", "-p", "no:cacheprovider", "tests/test_browser.py"],
        cwd=ROOT, capture_output=True, text=True,
    )
    wall = time.monotonic() - started
    summary = [line for line in done.stdout.splitlines() if re.search(r"\d+ (passed|failed|skipped|error)", line)]
    return wall, (summary[-1].strip("= ") if summary else f"pytest exited {done.returncode}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="page loads per page (default 5)")
    parser.add_argument("--no-tests", action="store_true", help="skip timing the browser test run")
    args = parser.parse_args()

    rows = []
    started = time.monotonic()
    with browser.launch() as chromium:
        rows.append(("Chromium launch (headless, fresh profile)", f"{time.monotonic() - started:.2f} s"))
        name, project = browser.pages()[0]
        with Server(project, label=f"{name}-bench") as server:
            rounds = [load_to_first_echo(chromium, server.http_url) for _ in range(args.rounds + 1)]
        # The first round pays for the server's first request (Django's URL and template loading).
        (cold_open, cold_echo), warm = rounds[0], rounds[1:]
        rows.append((f"{name}: page load to socket open, first load", f"{cold_open:.2f} s"))
        rows.append((f"{name}: page load to first echo, first load", f"{cold_echo:.2f} s"))
        rows.append((f"{name}: page load to first echo, median of {len(warm)} more",
                     f"{statistics.median(echo for _, echo in warm):.2f} s"))
    if not args.no_tests:
        wall, summary = browser_tests()
        rows.append((f"`pytest -m browser tests/test_browser.py` ({summary})", f"{wall:.1f} s"))

    load = f", load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs" if hasattr(os, "getloadavg") else ""
    print(f"Browser benchmark on {platform.system()} {platform.machine()}, Python {platform.python_version()}, "
          f"{browser.system_browser() or 'Playwright Chromium'}{load}\n")
    print("| measure | time |\n|---|---|")
    for measure, value in rows:
        print(f"| {measure} | {value} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
