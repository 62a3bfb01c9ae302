"""Where the runner keeps its state and logs, and how long it waits for a server: one place for both."""

from __future__ import annotations

import os
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
