"""Where the runner keeps its state and logs, and how long it waits for a server: one place for both."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from .registry import ROOT

TIMEOUT = float(os.environ.get("WORKBOOK_TIMEOUT", "30"))
STATE_DIR = ROOT / ".workbook"


def shown(path: Path) -> str:
    """Name a file for a message: relative to the current directory when it is below it."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def write_whole(target: Path, write: Callable[[Path], object]) -> None:
    """Call write(part) to fill a file beside `target`, then rename it there: a reader sees the whole file or none."""
    part = target.with_name(f"{target.name}.{os.getpid()}.part")
    try:
        write(part)
        os.replace(part, target)
    finally:
        part.unlink(missing_ok=True)
