"""Shorten what a server printed, for reading: tracebacks to the project's own frames, repeated scopes to a line."""

from __future__ import annotations

import re
from pathlib import Path

from ..scopes import SCOPE, scope_keys


def fold_tracebacks(text: str, project: Path) -> str:
    """Shorten each traceback to its frames in `project`, plus the exception line."""
    out: list[str] = []
    lines = text.splitlines(keepends=True)
    i = 0
    while i < len(lines):
        if not lines[i].startswith("Traceback (most recent call last):"):
            out.append(lines[i])
            i += 1
            continue
        out.append(lines[i])
        i += 1
        hidden = 0
        while i < len(lines) and lines[i].startswith((" ", "\t")):
            frame = [lines[i]]
            i += 1
            while i < len(lines) and lines[i].startswith((" ", "\t")) and not lines[i].lstrip().startswith("File "):
                frame.append(lines[i])
                i += 1
            if str(project) in frame[0]:
                if hidden:
                    out.append(f"  … {hidden} frames in Django, Channels and asgiref …\n")
                out.extend(frame)
                hidden = 0
            else:
                hidden += 1
        if hidden:
            out.append(f"  … {hidden} frames in Django, Channels and asgiref …\n")
    return "".join(out)


def fold_scopes(text: str, seen: bool = False) -> tuple[str, bool]:
    """Keep the first pprint-ed scope in full (none if `seen`), fold the others; say whether one was seen."""

    def fold(match: re.Match) -> str:
        nonlocal seen
        if not seen:
            seen = True
            return match.group(0)
        return f"{{… a scope with {len(scope_keys(match.group(0)))} keys, as above …}}"

    return SCOPE.sub(fold, text), seen
