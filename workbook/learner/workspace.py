"""Learner mode: build a step yourself in workspace/, check it, get hints, see the answer, start over.

`start N` copies step N-1's snapshot into workspace/ (step 1 starts from the untouched startproject output)
and remembers N in workspace/.workbook-step; `check`, `hint`, `solution` and `reset` work on that step.
Work is never overwritten without a timestamped backup. WORKBOOK_WORKSPACE moves the workspace.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

from .. import console
from ..errors import WorkbookError
from ..registry import ROOT, Step, get_step, previous, project_files

STATE = ".workbook-step"


def workspace() -> Path:
    """Return the workspace directory: workspace/ in the checkout, or WORKBOOK_WORKSPACE."""
    return Path(os.environ.get("WORKBOOK_WORKSPACE") or ROOT / "workspace").resolve()


def backups_dir(ws: Path | None = None) -> Path:
    """Return where backups go: .workbook/backups/ beside the workspace."""
    ws = ws or workspace()
    return ws.parent / ".workbook" / "backups"


def _shown(path: Path) -> str:
    try:
        return f"{path.relative_to(Path.cwd()).as_posix()}/"
    except ValueError:
        return f"{path}/"


def how_to(make: str, python: str) -> str:
    """Say a command the way the learner is working: through make, or with python directly."""
    return f"`make {make}`" if os.environ.get("MAKELEVEL") else f"`python -m workbook {python}`"


def read_state(ws: Path) -> dict | None:
    try:
        return json.loads((ws / STATE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _write_state(ws: Path, state: dict) -> None:
    (ws / STATE).write_text(json.dumps(state) + "\n", encoding="utf-8")


def current_step(ws: Path | None = None) -> Step:
    """Return the step the workspace is working on, or say how to start one."""
    ws = ws or workspace()
    state = read_state(ws)
    if state is None:
        raise WorkbookError(f"{_shown(ws)} holds no step yet: start one with {how_to('step-1 start', 'start 1')}")
    return get_step(state["step"])


def workspace_target() -> tuple[Path, str, str]:
    """Return what `run workspace` serves: the directory, its label, and its make target."""
    ws = workspace()
    if not (ws / "manage.py").exists():
        raise WorkbookError(f"{_shown(ws)} holds no project yet: start a step with {how_to('step-1 start', 'start 1')}")
    state = read_state(ws)
    label = f"your workspace (step {state['step']})" if state else "your workspace"
    return ws, label, "workspace"


def start_of(step: Step) -> Path:
    """Return the snapshot a learner starts `step` from: the step before it."""
    return previous(step).path


def holds_work(ws: Path) -> bool:
    """Tell whether the workspace has files that differ from the start of its step."""
    from ..diffs import changed_files

    if not ws.is_dir() or not project_files(ws):
        return False
    state = read_state(ws)
    try:
        return state is None or bool(changed_files(start_of(get_step(state["step"])), ws))
    except (WorkbookError, KeyError):
        return True


def backup(ws: Path) -> Path:
    """Copy the workspace to .workbook/backups/workspace-YYYYmmdd-HHMMSS/ and return that directory."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    target, n = backups_dir(ws) / f"{ws.name}-{stamp}", 1
    while target.exists():
        n += 1
        target = backups_dir(ws) / f"{ws.name}-{stamp}-{n}"
    shutil.copytree(ws, target, ignore=shutil.ignore_patterns("__pycache__"))
    return target


def _fill(ws: Path, step: Step, hints: int = 0) -> None:
    """Empty the workspace (keeping the directory, a shell may sit in it) and copy the step's start into it."""
    ws.mkdir(parents=True, exist_ok=True)
    for child in ws.iterdir():
        shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()
    source = start_of(step)
    for name in project_files(source):
        (ws / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source / name, ws / name)
    _write_state(ws, {"step": step.number, "hints": hints})


def start(number: int | str, replace: bool = False) -> str:
    """Fill the workspace with the start of step `number`; return what happened, in one line."""
    step = get_step(number)
    if step.number == 0:
        raise WorkbookError("step 0 is the startproject baseline: start step 1 or later")
    ws = workspace()
    kept = ""
    if holds_work(ws):
        if not replace:
            again = how_to(f"step-{step.number} start REPLACE=1", f"start {step.number} --replace")
            raise WorkbookError(
                f"{_shown(ws)} holds your work: {again} replaces it and keeps a backup in "
                f"{_shown(backups_dir(ws))}, or {how_to('check', 'check')} checks it as it is"
            )
        kept = f" (your previous work is in {_shown(backup(ws))})"
    _fill(ws, step)
    return f"{_shown(ws)} now holds {previous(step).id}: turn it into {step.label}{kept}."


def reset() -> str:
    """Put the workspace back to the start of its step, keeping a backup of what was there."""
    ws = workspace()
    step = current_step(ws)
    kept = f"; your work is in {_shown(backup(ws))}" if holds_work(ws) else ""
    _fill(ws, step, hints=(read_state(ws) or {}).get("hints", 0))
    return f"{_shown(ws)} is back at the start of {step.label}{kept}."


def next_hint() -> str:
    """Return the next hint for the workspace's step, and count it as shown."""
    ws = workspace()
    step = current_step(ws)
    state = read_state(ws)
    shown = state.get("hints", 0)
    if not step.hints:
        return f"{step.label} has no hints: its STEP.md ({step.path.name}/STEP.md) walks through it."
    if shown >= len(step.hints):
        return (f"that was the last of {len(step.hints)} hints for {step.label}: "
                f"{how_to('solution', 'solution')} shows the answer as a diff.")
    _write_state(ws, {**state, "hints": shown + 1})
    return f"hint {shown + 1}/{len(step.hints)} for {step.label}: {step.hints[shown]}"


def solution(color: bool = False) -> str:
    """Return the diff that turns the workspace into the step's snapshot."""
    from ..diffs import unified

    ws = workspace()
    step = current_step(ws)
    text = unified(ws, step.path, color=color)
    if not text:
        return f"# {_shown(ws)} matches steps/{step.id}/ file for file: nothing left to do.\n"
    return f"# from {_shown(ws)} (-) to steps/{step.id}/ (+): the answer to {step.label}\n{text}"


def check(number: int | str | None = None, project: Path | None = None) -> int:
    """Run the step's checks on the workspace, print one line per check; return 0 only when all pass."""
    from .checks import run_checks

    ws = project or workspace()
    step = get_step(number) if number not in (None, "") else current_step(ws)
    if not (ws / "manage.py").exists():
        raise WorkbookError(f"{_shown(ws)} holds no project: start one with "
                            f"{how_to(f'step-{step.number} start', f'start {step.number}')}")
    marks = console.marks({"pass": "✔", "fail": "✘", "skip": "–"}, {"pass": "PASS", "fail": "FAIL", "skip": "SKIP"})
    print(f"Checking {_shown(ws)} against {step.label}", flush=True)

    def show(result) -> None:
        note = f"  (not run: {result.detail or 'fix the failure above first'})" if result.status == "skip" else ""
        print(f"  {marks[result.status]} {result.name}{note}", flush=True)
        if result.status == "fail":
            if result.detail:
                print(f"      {result.detail}", flush=True)
            if result.hint:
                print(f"      hint: {result.hint}", flush=True)

    results = run_checks(step, ws, report=show)
    passed = sum(r.passed for r in results)
    if passed == len(results):
        following = step.number + 1
        try:
            get_step(following)
            after = f" Next: {how_to(f'step-{following} start REPLACE=1', f'start {following} --replace')}."
        except WorkbookError:
            after = " That was the last step."
        print(f"All {len(results)} checks pass: {step.label} is done.{after}")
        return 0
    print(f"{passed} of {len(results)} checks pass. Stuck? {how_to('hint', 'hint')} gives a hint.")
    return 1
