"""Measure the offline class: the wheelhouse's size, and `make setup WHEELHOUSE=…` on a fresh clone with no network.

Run: `python bench/offline_setup.py [--wheelhouse DIR] [--runs N]` (Linux, root or user namespaces, from the
repository root). It makes the wheelhouse for every platform and Python (the files already there are kept), then
clones HEAD and runs the full set-up (dev group included) inside `unshare -n`, where no network interface exists,
with no uv on PATH and empty caches, as a laptop on a USB stick would. Prints a Markdown table; nothing here is a
test: numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def size_of(folder: Path) -> tuple[int, int]:
    files = [p for p in folder.iterdir() if p.is_file()]
    return len(files), sum(p.stat().st_size for p in files)


def offline_setup(wheelhouse: Path, python: str) -> float:
    """Clone HEAD into a temporary folder and time `make setup WHEELHOUSE=…` in a network namespace."""
    with tempfile.TemporaryDirectory(prefix="offline-setup-") as tmp:
        checkout = Path(tmp) / "workbook"
        subprocess.run(["git", "clone", "--quiet", str(ROOT), str(checkout)], check=True)
        (Path(tmp) / "empty").mkdir()
        env = {"PATH": str(Path(tmp) / "empty"), "HOME": tmp, "UV_CACHE_DIR": f"{tmp}/uv-cache",
               "PIP_CONFIG_FILE": os.devnull, "LANG": "C.UTF-8"}
        namespace = [shutil.which("unshare"), "-n" if os.geteuid() == 0 else "-rn"]
        started = time.monotonic()
        done = subprocess.run([*namespace, shutil.which("make"), "setup", f"PYTHON={python}",
                               f"WHEELHOUSE={wheelhouse}"], cwd=checkout, env=env, capture_output=True, text=True)
        elapsed = time.monotonic() - started
        if done.returncode != 0:
            log = checkout / ".workbook" / "logs" / "setup.log"
            sys.exit(f"offline set-up failed:\n{done.stderr}\n{log.read_text() if log.exists() else ''}")
        return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wheelhouse", default=str(ROOT / "build" / "wheelhouse"))
    parser.add_argument("--runs", type=int, default=1)
    options = parser.parse_args()
    venv_python = ROOT / ".venv" / "bin" / "python"
    folder = Path(options.wheelhouse).resolve()
    started = time.monotonic()
    subprocess.run([str(venv_python), "-m", "workbook", "wheelhouse", str(folder)], cwd=ROOT, check=True)
    made = time.monotonic() - started
    count, size = size_of(folder)
    python = getattr(sys, "_base_executable", None) or sys.executable
    version = subprocess.run([python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    times = [offline_setup(folder, python) for _ in range(options.runs)]
    print("| what | figure |")
    print("|---|---|")
    print(f"| wheelhouse (Linux x86_64/aarch64, macOS Intel/Apple, Windows; cp310–cp315) | {count} files, "
          f"{size / 2**20:.0f} MiB ({made:.0f} s to make or refresh) |")
    for run, seconds in enumerate(times, 1):
        print(f"| offline `make setup WHEELHOUSE=…` on a fresh clone, Python {version}, no uv, empty caches "
              f"(run {run}) | {seconds:.1f} s |")


if __name__ == "__main__":
    main()
