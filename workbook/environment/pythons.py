"""The Pythons the workbook supports, read from pyproject.toml's requires-python, and what each one needs.

Standard library only, and no syntax newer than Python 3.8: an old interpreter must reach the one-line
message, not a SyntaxError.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"
# Python versions without an autobahn wheel, where the lock builds it from source without its C extension.
NO_AUTOBAHN_WHEEL = (3, 15)
AUTOBAHN_WORKAROUND = {"AUTOBAHN_USE_NVX": "0"}


def requires_python(pyproject: Path = PYPROJECT) -> str:
    """Return pyproject.toml's requires-python, e.g. ">=3.10,<3.16"."""
    found = re.search(r'^requires-python\s*=\s*"([^"]+)"', pyproject.read_text(encoding="utf-8"), re.MULTILINE)
    if not found:
        raise ValueError(f"{pyproject} has no requires-python")
    return found.group(1)


def supported(spec: str | None = None) -> tuple[tuple[int, int], tuple[int, int]]:
    """Return the oldest and newest supported (major, minor), from a spec of the form ">=3.A,<3.B"."""
    spec = spec or requires_python()
    found = re.fullmatch(r">=\s*(\d+)\.(\d+)\s*,\s*<\s*(\d+)\.(\d+)", spec.strip())
    if not found:
        raise ValueError(f"requires-python must read '>=3.A,<3.B', not {spec!r}")
    low_major, low_minor, high_major, high_minor = map(int, found.groups())
    return (low_major, low_minor), (high_major, high_minor - 1)


def describe(spec: str | None = None) -> str:
    """Name the supported range for people, e.g. "3.10–3.15"."""
    (a, b), (c, d) = supported(spec)
    return f"{a}.{b}–{c}.{d}"


def is_supported(version: tuple[int, int], spec: str | None = None) -> bool:
    """Tell whether a (major, minor) Python is in the supported range."""
    low, high = supported(spec)
    return low <= tuple(version[:2]) <= high


def versions(spec: str | None = None) -> list[str]:
    """List every supported minor version, e.g. ["3.10", …, "3.15"]."""
    (major, low), (_, high) = supported(spec)
    return [f"{major}.{minor}" for minor in range(low, high + 1)]


def install_env(version: tuple[int, int]) -> dict[str, str]:
    """Return the environment variables installing the locks needs on this Python (empty when none)."""
    return dict(AUTOBAHN_WORKAROUND) if tuple(version[:2]) >= NO_AUTOBAHN_WHEEL else {}


def recommended(spec: str | None = None) -> str:
    """Name the newest supported Python that installs the locks as they are, e.g. "3.14"."""
    return [v for v in versions(spec) if not install_env(tuple(map(int, v.split("."))))][-1]


def version_of(python) -> tuple[int, int] | None:
    """Return (major, minor) of an interpreter that runs, None for one that does not (e.g. a broken pyenv shim)."""
    try:
        done = subprocess.run([str(python), "-c", "import sys; print(*sys.version_info[:2])"],
                              capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0:
        return None
    major, minor = done.stdout.split()
    return int(major), int(minor)
