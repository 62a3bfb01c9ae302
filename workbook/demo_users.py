"""Run a project's `demo_users` command (step 9's alice and bob), and skip it while nothing it depends on changed.

The command checks two passwords at Django's 1,000,000 PBKDF2 iterations, about 1.6 s of CPU. After it succeeds,
a stamp in .workbook/users/ records everything its outcome depends on: the interpreter, Django, the settings file
and the environment values it reads, the migrations, the command's own file, and every user's name and password
hash as the database holds them. While all of that is unchanged the command would change nothing and print the
same: create_demo_users() prints what it printed then. A login (a session, a last_login) leaves the stamp valid;
a password changed by hand does not.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sqlite3
import subprocess
from pathlib import Path

from .errors import WorkbookError
from .registry import ROOT
from .state import STATE_DIR, TIMEOUT, write_whole

COMMAND = Path("chat/management/commands/demo_users.py")
STAMPS = STATE_DIR / "users"


def run_demo_users(project: Path, python: str) -> subprocess.CompletedProcess:
    """Run the project's own `python manage.py demo_users` with `python`; return the finished process."""
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return subprocess.run([python, "manage.py", "demo_users"], cwd=project, env=env, capture_output=True,
                          text=True, timeout=TIMEOUT * 4, stdin=subprocess.DEVNULL)


def create_demo_users(project: Path, label: str = "") -> str:
    """Migrate the project's database if it needs it, run its `demo_users` command, and return what it printed."""
    from .servers.migrate import migrate_if_needed
    from .servers.server import Server

    label = label or project.name
    if not (project / COMMAND).is_file():
        raise WorkbookError(f"{label} has no demo_users command ({COMMAND}): the demo users arrive in step 9")
    server = Server(project, label=f"{project.name}-users", port=1)  # never started: it only names the interpreter
    migrate_if_needed(server)
    python = server.command()[0]
    stamp = STAMPS / f"{hashlib.sha256(str(project.resolve()).encode()).hexdigest()[:16]}.json"
    with contextlib.suppress(OSError, ValueError, LookupError, TypeError):  # no stamp, or not one of ours
        saved = json.loads(stamp.read_text(encoding="utf-8"))
        if saved["state"] is not None and saved["state"] == _state(project, python):
            return saved["stdout"]
    done = run_demo_users(project, python)
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines() or ["it printed nothing"]
        raise WorkbookError(f"{label}: `python manage.py demo_users` failed: {lines[-1]}")
    stamp.parent.mkdir(parents=True, exist_ok=True)
    saved = json.dumps({"state": _state(project, python), "stdout": done.stdout})
    write_whole(stamp, lambda part: part.write_text(saved, encoding="utf-8"))
    return done.stdout


def _state(project: Path, python: str) -> str | None:
    """Fingerprint what decides the command's outcome; None when it cannot be read with certainty."""
    from .servers.migrate import inputs, paths

    env = dict(os.environ)
    now = inputs(project, python, env)
    settings = project / (now["settings"].replace(".", "/") + ".py")
    try:
        migrated = json.loads(paths(project)[0].read_text(encoding="utf-8"))
        command, settings_text = (project / COMMAND).read_bytes(), settings.read_text(encoding="utf-8")
    except (OSError, ValueError):
        return None
    database = migrated.get("database")
    # Only Django's own user table is read here; a custom user model, or an unknown database, always runs.
    if now["django"] is None or migrated.get("inputs") != now or not database or "AUTH_USER_MODEL" in settings_text:
        return None
    try:
        with contextlib.closing(sqlite3.connect(f"{Path(database).as_uri()}?mode=ro", uri=True)) as db:
            users = db.execute("SELECT username, password FROM auth_user ORDER BY username").fetchall()
    except sqlite3.Error:
        return None
    return hashlib.sha256(json.dumps([now, database, hashlib.sha256(command).hexdigest(), users]).encode()).hexdigest()
