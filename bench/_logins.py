"""A scratch database for one benchmark: migrated, with logged-in users, for the servers under test to share."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STATE = ROOT / ".workbook" / "bench"


def logged_in(project: Path, python: str, count: int, name: str = "bench") -> tuple[dict[str, str], list[str]]:
    """Make a fresh database with `count` logged-in users; return the servers' env and one session key per user."""
    database = STATE / f"{name}.sqlite3"
    database.parent.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{database}{suffix}").unlink(missing_ok=True)
    # The script below migrates this database, so the runner need not (its stamp knows only the project's own).
    env = {"DJANGO_SQLITE_PATH": str(database), "WORKBOOK_MIGRATE": "0"}
    script = Path(__file__).with_name("_sessions.py")
    done = subprocess.run([python, str(script), str(count)], cwd=project, env={**os.environ, **env},
                          capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines() or ["it printed nothing"]
        raise RuntimeError(f"creating {count} logged-in users in {project.name} failed: {lines[-1]}")
    return env, json.loads(done.stdout.strip().splitlines()[-1])


def cookie(session_key: str) -> dict[str, str]:
    """The header a logged-in browser sends with its handshake."""
    return {"Cookie": f"sessionid={session_key}"}
