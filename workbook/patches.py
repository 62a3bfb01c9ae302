"""Read and apply unified diffs in pure Python: learners on Windows have neither `patch` nor, often, `git`."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .errors import WorkbookError

_HUNK = re.compile(r"@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")


@dataclass
class Hunk:
    header: str
    start: int  # the first old line, counted from 1 (for a pure insertion: the line it goes after)
    old: list[str] = field(default_factory=list)  # context and removed lines, with their "\n" when they have one
    new: list[str] = field(default_factory=list)  # context and added lines


def lines_of(text: str) -> list[str]:
    """Split text into lines that keep their endings, breaking on "\n" only (str.splitlines breaks on more)."""
    return re.findall(r"[^\n]*\n|[^\n]+$", text)


def parse(text: str, where: str) -> dict[str, list[Hunk]]:
    """Return the hunks of a unified diff by the path after `+++ b/`, refusing anything else."""
    files: dict[str, list[Hunk]] = {}
    hunk, old_left, new_left, last = None, 0, 0, []
    for number, line in enumerate(lines_of(text), 1):
        body = line.rstrip("\r\n")
        if line.startswith("\\"):  # "\ No newline at end of file": the line before has no "\n"
            for side in last:
                side[-1] = side[-1].rstrip("\n")
        elif old_left or new_left:
            kind, content = (body[:1] or " "), body[1:] + "\n"  # an empty line is blank context an editor trimmed
            if kind not in " -+" or (kind != "+" and not old_left) or (kind != "-" and not new_left):
                raise WorkbookError(f"{where}: line {number} does not fit its hunk ({body!r}): regenerate the patch")
            last = [hunk.old] * (kind in " -") + [hunk.new] * (kind in " +")
            for side in last:
                side.append(content)
            old_left, new_left = old_left - (kind in " -"), new_left - (kind in " +")
        elif line.startswith("+++ "):
            path = body[4:].split("\t")[0]
            if not path.startswith("b/"):
                raise WorkbookError(f"{where}: line {number} must name a file the step has, as +++ b/PATH")
            hunks = files.setdefault(path[2:], [])
        elif match := _HUNK.match(line):
            if not files:
                raise WorkbookError(f"{where}: line {number} starts a hunk before any +++ b/PATH header")
            start, old_count, _, new_count = (int(g) if g else 1 for g in match.groups())
            hunk, old_left, new_left = Hunk(match.group(0), start), old_count, new_count
            hunks.append(hunk)
        elif body and not line.startswith(("--- ", "diff ", "index ")):  # git's own headers may stay
            raise WorkbookError(f"{where}: line {number} is not part of a unified diff ({body!r})")
    if old_left or new_left:
        raise WorkbookError(f"{where}: the last hunk is cut short: regenerate the patch")
    return files


def _matches(lines: list[str], at: int, old: list[str]) -> bool:
    window = [line.rstrip("\r\n") for line in lines[at:at + len(old)]]
    return window == [line.rstrip("\n") for line in old]


def apply(text: str, hunks: list[Hunk], where: str, remedy: str) -> str:
    """Apply hunks to text, each where its old lines match (nearest its line number); refuse in one line if none."""
    lines = lines_of(text)
    eol = "\r\n" if "\r\n" in text else "\n"  # a Windows checkout (git autocrlf) keeps its line endings
    out, cursor = [], 0
    for number, hunk in enumerate(hunks, 1):
        expected = hunk.start - 1 if hunk.old else hunk.start
        places = sorted(range(cursor, len(lines) - len(hunk.old) + 1), key=lambda at: abs(at - expected))
        at = next((at for at in places if _matches(lines, at, hunk.old)), None)
        if at is None:
            raise WorkbookError(f"{where}: hunk {number} ({hunk.header}) no longer matches "
                                f"({_difference(lines, expected, hunk.old)}): {remedy}")
        out += lines[cursor:at] + [line[:-1] + eol if line.endswith("\n") else line for line in hunk.new]
        cursor = at + len(hunk.old)
    return "".join(out + lines[cursor:])


def _difference(lines: list[str], at: int, old: list[str]) -> str:
    """Say where the step departs from what the hunk expects at its own line number."""
    for number, wanted in enumerate((line.rstrip("\n") for line in old), at + 1):
        if number > len(lines):
            return f"the file ends at line {len(lines)}, the patch expects {wanted!r}"
        found = lines[number - 1].rstrip("\r\n")
        if found != wanted:
            return f"line {number} reads {found!r}, the patch expects {wanted!r}"
    return "its lines are there, but before an earlier hunk"
