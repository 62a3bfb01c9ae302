"""`python -m workbook users 9`: create step 9's demo users (alice, bob) in a project's migrated database."""

from __future__ import annotations

from pathlib import Path

from .demo_users import create_demo_users


def project_for(target: str) -> tuple[Path, str]:
    """Return the project directory and label for a step number or `workspace`."""
    if target == "workspace":
        from .learner.workspace import workspace_target

        project, label, _ = workspace_target()
        return Path(project), label
    from .registry import get_step

    step = get_step(target)
    return step.path, step.label


def cmd_users(args) -> int:
    project, label = project_for(args.step)
    print(create_demo_users(project, label), end="", flush=True)
    return 0


def add_commands(sub) -> None:
    """Add `users`: the demo users of step 9, through the project's own management command."""
    users = sub.add_parser("users", help="create step 9's demo users alice and bob (make step-9 users)")
    users.add_argument("step", nargs="?", default="9", help="a step from 9 on, or workspace (default: 9)")
    users.set_defaults(func=cmd_users)
