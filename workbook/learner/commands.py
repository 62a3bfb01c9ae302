"""Learner mode's commands: `start N`, `check`, `hint`, `solution` and `reset` (make step-N start, make check, …)."""

from __future__ import annotations

import sys

from ..registry import get_step
from .workspace import check, how_to, next_hint, reset, solution, start


def _cmd_start(args) -> int:
    print(f"workbook: {start(args.step, replace=args.replace)}")
    step = get_step(args.step)
    print(f"  read  steps/{step.id}/STEP.md (and notebooks/{step.id}.ipynb)")
    print(f"  then  {how_to('check', 'check')} · {how_to('hint', 'hint')} · {how_to('workspace run', 'run workspace')}"
          f" · {how_to('solution', 'solution')} · {how_to('reset', 'reset')}")
    return 0


def _cmd_check(args) -> int:
    return check(args.step)


def _cmd_hint(args) -> int:
    print(next_hint())
    return 0


def _cmd_solution(args) -> int:
    color = args.color == "always" or (args.color == "auto" and sys.stdout.isatty())
    sys.stdout.write(solution(color=color))
    return 0


def _cmd_reset(args) -> int:
    print(f"workbook: {reset()}")
    return 0


def add_commands(sub) -> None:
    """Add start, check, hint, solution and reset to the workbook's command line."""
    start_parser = sub.add_parser("start", help="start building step N yourself in workspace/")
    start_parser.add_argument("step", help="step number, e.g. 4")
    start_parser.add_argument("--replace", action="store_true", help="replace work in workspace/ (backed up first)")
    start_parser.set_defaults(func=_cmd_start)

    check_parser = sub.add_parser("check", help="check workspace/ against its step (or step N)")
    check_parser.add_argument("step", nargs="?", help="step number; the started step when left out")
    check_parser.set_defaults(func=_cmd_check)

    sub.add_parser("hint", help="show the next hint for the step in workspace/").set_defaults(func=_cmd_hint)

    solution_parser = sub.add_parser("solution", help="show the diff from workspace/ to the step's snapshot")
    solution_parser.add_argument("--color", choices=["auto", "always", "never"], default="auto")
    solution_parser.set_defaults(func=_cmd_solution)

    sub.add_parser("reset", help="put workspace/ back to the start of its step (keeps a backup)").set_defaults(
        func=_cmd_reset
    )
