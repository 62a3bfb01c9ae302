"""Unified diffs between two steps (or any two project directories), as text or as HTML."""

from __future__ import annotations

import difflib
import html
from dataclasses import dataclass
from pathlib import Path

from pygments import highlight
from pygments.formatters import TerminalFormatter
from pygments.lexers import DiffLexer

from .registry import Step, project_files


@dataclass(frozen=True)
class FileDiff:
    path: str
    status: str  # "added", "removed" or "changed"
    lines: tuple[str, ...]  # unified diff lines, headers included


def _read(path: Path) -> list[str]:
    if not path.exists():
        return []
    return path.read_text(encoding="utf-8").splitlines(keepends=True)


def _dir(project: Step | Path) -> Path:
    return project.path if isinstance(project, Step) else Path(project)


def changed_files(old: Step | Path, new: Step | Path) -> list[str]:
    """List the files (STEP.md aside) that differ between two projects, byte for byte."""
    a, b = _dir(old), _dir(new)
    names = sorted(set(project_files(a)) | set(project_files(b)))
    return [
        name for name in names
        if not (a / name).exists() or not (b / name).exists()
        or (a / name).read_bytes() != (b / name).read_bytes()
    ]


def diff(old: Step | Path, new: Step | Path, context: int = 3) -> list[FileDiff]:
    """Return a FileDiff for each file that differs between two projects."""
    a, b = _dir(old), _dir(new)
    result = []
    for name in changed_files(old, new):
        before, after = _read(a / name), _read(b / name)
        status = "added" if not (a / name).exists() else "removed" if not (b / name).exists() else "changed"
        lines = difflib.unified_diff(
            before, after,
            fromfile=f"{a.name}/{name}" if before or status == "changed" else "/dev/null",
            tofile=f"{b.name}/{name}" if after or status == "changed" else "/dev/null",
            n=context,
        )
        result.append(FileDiff(name, status, tuple(line.rstrip("\n") for line in lines)))
    return result


def colour(text: str) -> str:
    """Colour unified-diff text for a terminal: removals red, additions green, hunk headers magenta."""
    if not text.strip():
        return text
    return highlight(text, DiffLexer(stripnl=False), TerminalFormatter())


def unified(old: Step | Path, new: Step | Path, color: bool = False) -> str:
    """Render the diff as unified text, coloured for a terminal when asked."""
    lines = [line for file_diff in diff(old, new) for line in file_diff.lines]
    text = "\n".join(lines) + ("\n" if lines else "")
    return colour(text) if color else text


class HtmlDiff(str):
    """An HTML diff that Jupyter renders as such."""

    def _repr_html_(self) -> str:
        return str(self)


_STYLE = """<style>
.wb-diff{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:13px;line-height:1.45}
.wb-diff h4{font-family:system-ui,sans-serif;margin:1em 0 .3em}
.wb-diff pre{margin:0;padding:.4em 0;background:#f6f8fa;border:1px solid #d0d7de;border-radius:6px;overflow-x:auto}
.wb-diff span{display:block;padding:0 .8em;white-space:pre}
.wb-diff .add{background:#dafbe1;color:#116329}
.wb-diff .del{background:#ffebe9;color:#82071e}
.wb-diff .hunk{color:#6639ba;background:#f3f0ff}
.wb-diff .tag{font-size:11px;font-weight:normal;color:#57606a;margin-left:.5em}
</style>"""


def as_html(old: Step | Path, new: Step | Path) -> HtmlDiff:
    """Render the diff as HTML, additions green and removals red, one block per file."""
    parts = [_STYLE, '<div class="wb-diff">']
    for file_diff in diff(old, new):
        parts.append(f"<h4>{html.escape(file_diff.path)}<span class='tag'>{file_diff.status}</span></h4><pre>")
        for line in file_diff.lines[2:]:  # the ---/+++ headers are in the title
            kind = {"+": "add", "-": "del", "@": "hunk"}.get(line[:1], "ctx")
            parts.append(f'<span class="{kind}">{html.escape(line) or " "}</span>')
        parts.append("</pre>")
    if len(parts) == 2:
        parts.append("<p>No file changed.</p>")
    parts.append("</div>")
    return HtmlDiff("".join(parts))
