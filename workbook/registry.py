"""The step registry: read `steps/steps.toml`, the one source of truth for the stages."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

from .errors import WorkbookError

ROOT = Path(__file__).resolve().parent.parent
STEPS_DIR = ROOT / "steps"
REGISTRY = STEPS_DIR / "steps.toml"


@dataclass(frozen=True)
class Step:
    number: int
    slug: str
    title: str
    goal: str
    changed: tuple[str, ...]
    teach: int  # minutes an instructor spends presenting the idea
    exercise: int  # minutes a learner spends building the step in learner mode
    # As steps.toml writes them: a {fix:SLUG} is filled in from the failure catalogue when `hints` is read, so
    # `make step-N run` does not read the catalogue.
    hint_texts: tuple[str, ...] = field(default=(), repr=False)

    @property
    def hints(self) -> tuple[str, ...]:
        """The hints learner mode gives, one at a time, each fix taken from the failure catalogue."""
        return tuple(_with_fixes(hint) for hint in self.hint_texts)

    @property
    def minutes(self) -> int:
        """The whole time the step takes: teaching plus exercise."""
        return self.teach + self.exercise

    @property
    def id(self) -> str:
        """The directory name, e.g. `04-routing`: also the readable test id."""
        return f"{self.number:02d}-{self.slug}"

    @property
    def path(self) -> Path:
        return STEPS_DIR / self.id

    @property
    def notebook(self) -> Path:
        return ROOT / "notebooks" / f"{self.id}.ipynb"

    @property
    def label(self) -> str:
        return f"step {self.number} · {self.title}"


def _read(registry: Path) -> dict:
    with open(registry, "rb") as f:
        return tomllib.load(f)


def _with_fixes(hint: str) -> str:
    """Put the failure catalogue's fix where a hint says {fix:SLUG}, so a fix is written once."""
    if "{fix:" not in hint:
        return hint
    from . import catalogue

    return re.sub(r"\{fix:([\w-]+)\}", lambda m: catalogue.fix(m.group(1)), hint)


def _step(entry: dict) -> Step:
    return Step(
        number=entry["number"],
        slug=entry["slug"],
        title=entry["title"],
        goal=entry["goal"],
        changed=tuple(entry.get("changed", ())),
        teach=entry.get("teach", entry.get("minutes", 0)),
        exercise=entry.get("exercise", 0),
        hint_texts=tuple(entry.get("hints", ())),
    )


def baseline(registry: Path = REGISTRY) -> Step:
    """Return step 0: the untouched `startproject` output that step 1 grows from."""
    return _step(_read(registry)["baseline"])


def load_steps(registry: Path = REGISTRY) -> list[Step]:
    """Read every step from the registry, in order (the baseline, step 0, not included)."""
    steps = [_step(entry) for entry in _read(registry)["step"]]
    numbers = [s.number for s in steps]
    if numbers != list(range(1, len(steps) + 1)):
        raise WorkbookError(f"{registry} must number its steps 1, 2, 3… in order, not {numbers}")
    return steps


def get_step(number: int | str) -> Step:
    """Return step `number` (1, "4", "04" or "04-routing"), or say which steps exist."""
    steps = load_steps()
    text = str(number).strip()
    if text.lower() == "final":
        return final()
    head = text.split("-", 1)[0]
    if head.isdigit():
        for step in [baseline(), *steps]:
            if step.number == int(head):
                return step
    raise WorkbookError(
        f"there is no step {text!r}: choose 1 to {len(steps)} or final (`python -m workbook list` shows them)"
    )


@dataclass(frozen=True)
class FinalProject(Step):
    """The finished, hardened project: run, diffed and tested like a step, but it lives in final/."""

    base: int = 0  # the step it hardens, which `previous()` returns

    @property
    def id(self) -> str:
        return "final"

    @property
    def path(self) -> Path:
        return ROOT / "final"

    @property
    def label(self) -> str:
        return "the final project"


def final(registry: Path = REGISTRY) -> FinalProject:
    """Return the final project, numbered after the last step; `previous()` is the step it hardens."""
    entry = _read(registry)["final"]
    step = _step({**entry, "number": len(load_steps(registry)) + 1, "slug": "final"})
    return FinalProject(**vars(step), base=entry.get("base", step.number - 1))


def previous(step: Step) -> Step | None:
    """Return the step before `step` (the baseline for step 1; for final/, the step it hardens), or None."""
    if isinstance(step, FinalProject):
        return get_step(step.base)
    return get_step(step.number - 1) if step.number > 0 else None


def project_files(directory: Path) -> list[str]:
    """List a project's files relative to it, as a learner's editor shows them."""
    # Tooling a learner may keep inside their own project (a virtualenv, collected static files) is not the project.
    skip_dirs = {"__pycache__", ".pytest_cache", "node_modules", ".ipynb_checkpoints", ".git", ".venv", "venv", ".tox",
                 "staticfiles", ".vscode", ".idea"}
    # The databases are made by migrate and by `manage.py test` (step 11 and final/ name theirs test-db.sqlite3).
    databases = {f"{base}{suffix}" for base in ("db.sqlite3", "test-db.sqlite3")
                 for suffix in ("", "-journal", "-wal", "-shm")}
    skip_files = {"STEP.md", "FINAL.md", ".DS_Store", ".workbook-step", *databases}
    found = []
    for dirpath, dirnames, filenames in os.walk(directory):
        dirnames[:] = sorted(d for d in dirnames if d not in skip_dirs)
        for name in filenames:
            if name in skip_files or name.endswith((".pyc", ".log")):
                continue
            found.append((Path(dirpath) / name).relative_to(directory).as_posix())
    return sorted(found)


def steps_table() -> str:
    """Render the step table the README shows, straight from the registry."""
    from .registry import load_steps

    rows = [
        "| Step | Title | The one idea | Notebook | Minutes (teach + do) |",
        "|---:|---|---|---|---|",
    ]
    for step in load_steps():
        notebook = step.notebook.relative_to(ROOT).as_posix()
        rows.append(
            f"| {step.number} | [{step.title}](steps/{step.id}/STEP.md) | {step.goal} "
            f"| [{step.id}]({notebook}) | {step.teach} + {step.exercise} |"
        )
    return "\n".join(rows)
