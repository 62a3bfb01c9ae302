"""What the runner prints to a terminal: check marks the terminal can show, and pages it writes or checks.

Standard library only: the preflight imports it before .venv/ exists.
"""

from __future__ import annotations

import sys
from pathlib import Path

from .errors import WorkbookError


def marks(fancy: dict[str, str], plain: dict[str, str]) -> dict[str, str]:
    """Return `fancy` (✔, ✘ …) when stdout can encode every one of them, else `plain` (a Windows code page, say)."""
    encoding = getattr(sys.stdout, "encoding", None) or "ascii"
    try:
        "".join(fancy.values()).encode(encoding)
        return fancy
    except (UnicodeEncodeError, LookupError):
        return plain


def write_or_check(path: Path, text: str, check: bool, command: str) -> int:
    """Write a generated page, or with `check` only say whether it is current (WorkbookError when it is not)."""
    from .registry import ROOT  # not at the top: the registry needs tomli on Python 3.10, outside .venv/

    shown = path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else str(path)
    if check:
        current = path.read_text(encoding="utf-8") if path.is_file() else None
        if current != text:
            raise WorkbookError(f"{shown} is out of date: run `{command}`")
        print(f"workbook: {shown} is current")
        return 0
    path.write_text(text, encoding="utf-8")
    print(f"workbook: wrote {shown}")
    return 0
