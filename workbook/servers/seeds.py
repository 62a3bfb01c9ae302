"""Seeds: a database that `migrate` created from nothing, kept for the next copy of the same project.

A copy of a project (a learner's workspace, a test's copy of a step) that has no database yet gets a copy of the
seed kept under the same fingerprint (workbook/servers/migrate.py: inputs) instead of running `migrate` itself,
which costs a Python start and Django's set-up, about 1.5 s. A database that held anything before migrate ran is
never kept.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import sqlite3
from pathlib import Path

from ..state import STATE_DIR, write_whole

SEEDS = STATE_DIR / "migrate" / "seeds"


def applied(database: str | None) -> int | None:
    """Count the migrations a sqlite database records as applied; None when it has no record (or is not there)."""
    if not database or not Path(database).is_file():
        return None
    try:
        with contextlib.closing(sqlite3.connect(f"{Path(database).as_uri()}?mode=ro", uri=True)) as db:
            return db.execute("SELECT COUNT(*) FROM django_migrations").fetchone()[0]
    except sqlite3.Error:
        return None


def _seed(now: dict) -> tuple[Path, Path]:
    key = hashlib.sha256(json.dumps(now, sort_keys=True).encode()).hexdigest()[:16]
    return SEEDS / f"{key}.sqlite3", SEEDS / f"{key}.json"


def keep_seed(project: Path, database: Path, now: dict) -> None:
    """Keep a copy of a database that migrate has just created, for the next copy of the project to start from."""
    if now["django"] is None or not database.is_relative_to(project):
        return
    seed, about = _seed(now)
    SEEDS.mkdir(parents=True, exist_ok=True)
    write_whole(seed, lambda part: shutil.copyfile(database, part))
    note = json.dumps({"database": database.relative_to(project).as_posix(), "applied": applied(str(seed))})
    write_whole(about, lambda part: part.write_text(note, encoding="utf-8"))


def from_seed(project: Path, now: dict) -> str | None:
    """Give a project without a database a copy of the seed kept for the same fingerprint; return its path, or None."""
    if now["django"] is None:
        return None
    seed, about = _seed(now)
    try:
        saved = json.loads(about.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    database = project / saved["database"]
    if database.exists() or saved.get("applied") is None:
        return None
    try:
        write_whole(database, lambda part: shutil.copyfile(seed, part))
    except OSError:
        return None
    if applied(str(database)) != saved["applied"]:
        database.unlink(missing_ok=True)  # not the seed its note describes: let migrate make the database
        return None
    return str(database)
