"""Turn a learner's broken project into one line: where it breaks (file, line) and the hint that fits."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

# The hints come from the failure catalogue; checks import hint_for from here, next to the traceback reader.
from ..catalogue import hint_for as hint_for
from ..registry import project_files


@dataclass(frozen=True)
class Problem:
    """Where the learner's code broke, and how."""

    file: str | None  # relative to the project
    line: int | None
    error: str  # e.g. "ModuleNotFoundError: No module named 'chat.routing'"

    def __str__(self) -> str:
        where = f"{self.file}, line {self.line}: " if self.file else ""
        return f"{where}{self.error}"


def syntax_errors(project: Path) -> list[Problem]:
    """Compile every .py file of the project; return one Problem per file that does not compile."""
    problems = []
    for name in project_files(project):
        if not name.endswith(".py"):
            continue
        source = (project / name).read_bytes()
        try:
            compile(source, name, "exec", dont_inherit=True)
        except SyntaxError as error:
            kind = type(error).__name__
            problems.append(Problem(name, error.lineno, f"{kind}: {error.msg}"))
        except ValueError as error:  # e.g. a NUL byte in the file
            problems.append(Problem(name, None, f"{type(error).__name__}: {error}"))
    return problems


_FRAME = re.compile(r'^\s*File "([^"]+)", line (\d+)', re.MULTILINE)
_EXCEPTION = re.compile(r"^([A-Za-z_][\w.]*(?:Error|Exception|Exit|NotReady|Interrupt|Configured|Operation)\b.*)$",
                        re.MULTILINE)


def from_traceback(text: str, project: Path) -> Problem | None:
    """Find the first traceback in `text`: its root exception and the deepest frame in the project's files."""
    if "Traceback (most recent call last)" not in text:
        return None
    root = project.resolve()
    # Chained tracebacks print the cause first: it names the learner's mistake, the rest is Django reacting.
    first = text[text.index("Traceback (most recent call last)"):]
    blocks = re.split(r"\n\s*\nThe above exception was the direct cause|\n\s*\nDuring handling of the above", first)
    block = blocks[0]
    exceptions = _EXCEPTION.findall(block)
    error = exceptions[-1].strip() if exceptions else block.strip().splitlines()[-1].strip()
    where: tuple[str, int] | None = None
    for path, line in _FRAME.findall(block):
        try:
            relative = Path(path).resolve().relative_to(root)
        except (ValueError, OSError):
            continue
        where = (relative.as_posix(), int(line))
    return Problem(where[0] if where else None, where[1] if where else None, error)
