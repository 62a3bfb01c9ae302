"""`python -m workbook users 9`: create step 9's demo users (alice, bob) in a project's migrated database."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from .errors import WorkbookError
from .registry import ROOT

COMMAND = Path("chat/management/commands/demo_users.py")


def project_for(target: str) -> tuple[Path, str]:
    """Return the project directory and label for a step number or `workspace`."""
    if target == "workspace":
        from .learner.workspace import workspace_target

        project, label, _ = workspace_target()
        return Path(project), label
    from .registry import get_step

    step = get_step(target)
    return step.path, step.label


def create_demo_users(project: Path, label: str = "") -> str:
    """Migrate the project's database if it needs it, run its `demo_users` command, and return what it printed."""
    from .servers.migrate import migrate_if_needed
    from .servers.server import Server

    label = label or project.name
    if not (project / COMMAND).is_file():
        raise WorkbookError(f"{label} has no demo_users command ({COMMAND}): the demo users arrive in step 9")
    server = Server(project, label=f"{project.name}-users", port=1)  # never started: it only names the interpreter
    migrate_if_needed(server)
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    done = subprocess.run([server.command()[0], "manage.py", "demo_users"], cwd=project, env=env,
                          capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines() or ["it printed nothing"]
        raise WorkbookError(f"{label}: `python manage.py demo_users` failed: {lines[-1]}")
    return done.stdout


def cmd_users(args) -> int:
    project, label = project_for(args.step)
    print(create_demo_users(project, label), end="", flush=True)
    return 0


def add_commands(sub) -> None:
    """Add `users`: the demo users of step 9, through the project's own management command."""
    users = sub.add_parser("users", help="create step 9's demo users alice and bob (make step-9 users)")
    users.add_argument("step", nargs="?", default="9", help="a step from 9 on, or workspace (default: 9)")
    users.set_defaults(func=cmd_users)
