"""Run a project's `demo_users` command (step 9's alice and bob), and skip it while nothing it depends on changed.

The command checks two passwords at Django's 1,000,000 PBKDF2 iterations, about 1.6 s of CPU. After it succeeds,
a stamp in .workbook/users/ records everything its outcome depends on: the interpreter, Django, the settings file
and the environment values it reads, the migrations, the command's own file, and every user's name and password
hash as the database holds them. While all of that is unchanged the command would change nothing and print the
same: create_demo_users() prints what it printed then. A login (a session, a last_login) leaves the stamp valid;
a password changed by hand does not.

A stamp belongs to one project directory, but a fresh copy of a step (a learner's workspace, a test's copy) is a
new directory. Its database is often a copy of the seed migrate keeps (workbook/servers/seeds.py), and the command
does the same thing to every such copy. So when the command runs on a database that is still, byte for byte, that
seed, what it made is kept as a users seed, under a key covering the seed's bytes, the migrate fingerprint and every
file of the project (the command's, and whatever else Django's set-up imports). The next copy whose database is
still that seed, with the same key, gets the users seed's user table instead of a run: the same users with the
same password hashes (so the same passwords log in), and the same printed lines. The stamp is then written as
after a run.

Why this is safe: the same command, code, settings, interpreter and Django, run on the same bytes, makes the same
users; only the random salts in the hashes differ, and any salt verifies the same password. A users seed is kept
only when its only change from the migrate seed is the user table, with no one logged in (a session written by a
server meanwhile, or any other row, keeps nothing), and it is checked again against the copy before use. The copy
in happens in one sqlite write transaction that first checks the database is still the seed. Anything uncertain
(a custom user model, a database the runner did not migrate or outside the project, a journal or WAL beside it,
a row added since the copy, a missing or unreadable seed) runs the command, as before.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sqlite3
import subprocess
from pathlib import Path
from typing import NamedTuple

from .environment.pythonpath import importable
from .errors import WorkbookError
from .registry import ROOT, project_files
from .state import STATE_DIR, TIMEOUT, write_whole

COMMAND = Path("chat/management/commands/demo_users.py")
STAMPS = STATE_DIR / "users"


def run_demo_users(project: Path, python: str) -> subprocess.CompletedProcess:
    """Run the project's own `python manage.py demo_users` with `python`; return the finished process."""
    env = importable({**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}, ROOT)
    return subprocess.run([python, "manage.py", "demo_users"], cwd=project, env=env, capture_output=True,
                          text=True, timeout=TIMEOUT * 4, stdin=subprocess.DEVNULL)


def create_demo_users(project: Path, label: str = "") -> str:
    """Migrate the project's database if it needs it, run its `demo_users` command, and return what it printed."""
    from .servers.migrate import inputs, migrate_if_needed, stamp_name
    from .servers.seeds import keep_users, users_from_seed
    from .servers.server import Server

    label = label or project.name
    if not (project / COMMAND).is_file():
        raise WorkbookError(f"{label} has no demo_users command ({COMMAND}): the demo users arrive in step 9")
    server = Server(project, label=f"{project.name}-users", port=1)  # never started: it only names the interpreter
    migrate_if_needed(server)
    python = server.command()[0]
    now = inputs(project, python, dict(os.environ))
    facts = _facts(project, now)  # running the command changes users only: these stay true after it
    # One stamp per environment the settings read, named as migrate names its own.
    stamp = STAMPS / f"{stamp_name(project, now)}.json"
    with contextlib.suppress(OSError, ValueError, LookupError, TypeError):  # no stamp, or not one of ours
        saved = json.loads(stamp.read_text(encoding="utf-8"))
        if saved["state"] is not None and saved["state"] == _state(facts):
            return saved["stdout"]
    seed = _users_seed(project, facts)
    printed = users_from_seed(seed.database, seed.start, seed.key) if seed else None
    if printed is None:
        done = run_demo_users(project, python)
        if done.returncode != 0:
            lines = (done.stderr or done.stdout).strip().splitlines() or ["it printed nothing"]
            raise WorkbookError(f"{label}: `python manage.py demo_users` failed: {lines[-1]}")
        printed = done.stdout
        if seed:
            keep_users(seed.database, seed.now, seed.key, printed)
    stamp.parent.mkdir(parents=True, exist_ok=True)
    saved = json.dumps({"state": _state(facts), "stdout": printed})
    write_whole(stamp, lambda part: part.write_text(saved, encoding="utf-8"))
    return printed


class Facts(NamedTuple):
    """What the command's outcome and the users seed depend on, read once per call."""

    now: dict  # the migrate fingerprint
    database: str  # the sqlite file migrate left
    command: bytes  # the command's own file


class UsersSeed(NamedTuple):
    """The users seed a database that is still exactly its migrate seed can get, or leave."""

    database: Path
    start: bytes  # the database's bytes: still the migrate seed's
    key: str
    now: dict  # the migrate fingerprint


def _facts(project: Path, now: dict) -> Facts | None:
    """Read the database migrate left and the command's file, for the fingerprint `now`; None when any is uncertain."""
    from .servers.migrate import paths

    settings = project / (now["settings"].replace(".", "/") + ".py")
    try:
        migrated = json.loads(paths(project, now)[0].read_text(encoding="utf-8"))
        command, settings_text = (project / COMMAND).read_bytes(), settings.read_text(encoding="utf-8")
    except (OSError, ValueError):
        return None
    database = migrated.get("database")
    # Only Django's own user table is read here; a custom user model, or an unknown database, always runs.
    if now["django"] is None or migrated.get("inputs") != now or not database or "AUTH_USER_MODEL" in settings_text:
        return None
    return Facts(now, database, command)


def _state(facts: Facts | None) -> str | None:
    """Fingerprint what decides the command's outcome; None when it cannot be read with certainty."""
    if facts is None:
        return None
    try:
        with contextlib.closing(sqlite3.connect(f"{Path(facts.database).as_uri()}?mode=ro", uri=True)) as db:
            users = db.execute("SELECT username, password FROM auth_user ORDER BY username").fetchall()
    except sqlite3.Error:
        return None
    return hashlib.sha256(json.dumps([facts.now, facts.database, hashlib.sha256(facts.command).hexdigest(),
                                      users]).encode()).hexdigest()


def _users_seed(project: Path, facts: Facts | None) -> UsersSeed | None:
    """Name the users seed for a database still exactly as its migrate seed; None when there is none to use or keep.

    The key covers the seed's bytes, the migrate fingerprint and every file of the project but its database: the
    command's own, and any code Django's set-up imports (a signal that writes a row when a user is saved).
    """
    from .servers.seeds import untouched

    if facts is None:
        return None
    start = untouched(project, facts.database, facts.now)
    if start is None:
        return None
    code = hashlib.sha256(hashlib.sha256(start).digest())
    own = Path(facts.database).relative_to(project).as_posix()
    try:
        for name in project_files(project):
            if name != own and not name.startswith(f"{own}-"):  # the database, and a journal if one appears meanwhile
                code.update(name.encode() + b"\0" + (project / name).read_bytes() + b"\0")
    except OSError:
        return None
    key = hashlib.sha256(json.dumps([facts.now, code.hexdigest()], sort_keys=True).encode()).hexdigest()[:16]
    return UsersSeed(Path(facts.database), start, key, facts.now)
