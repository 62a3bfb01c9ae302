"""Seeds: a database that `migrate` created from nothing, kept for the next copy of the same project.

A copy of a project (a learner's workspace, a test's copy of a step) that has no database yet gets a copy of the
seed kept under the same fingerprint (workbook/servers/migrate.py: inputs) instead of running `migrate` itself,
which costs a Python start and Django's set-up, about 1.5 s. A database that held anything before migrate ran is
never kept.

Users seeds do the same for step 9's `demo_users` command (workbook/demo_users.py says when): a copy of a seed that
the command then filled, whose only change is the user table. untouched() tells whether a database is still the
seed byte for byte; keep_users() keeps what the command made of it, and users_from_seed() copies that user table in.
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
USERS_SEEDS = STATE_DIR / "users" / "seeds"
USERS = "auth_user"  # Django's own user table: the only one the demo users may change


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


def untouched(project: Path, database: str | None, now: dict) -> bytes | None:
    """Return the bytes of a project's database when it is still, byte for byte, the seed of `now`; else None."""
    if now["django"] is None or not database or not Path(database).is_relative_to(project):
        return None
    # A journal or write-ahead log beside it holds part of the database; the file alone would not say what is in it.
    if any(Path(f"{database}{suffix}").exists() for suffix in ("-journal", "-wal", "-shm")):
        return None
    try:
        mine, seed = Path(database).read_bytes(), _seed(now)[0].read_bytes()
    except OSError:
        return None
    return mine if mine == seed and mine[18:20] == b"\x01\x01" else None  # 1, 1: a rollback journal, not WAL


def _users_seed(key: str) -> tuple[Path, Path]:
    return USERS_SEEDS / f"{key}.sqlite3", USERS_SEEDS / f"{key}.json"


def _only_users_differ(db: sqlite3.Connection, other: str) -> bool:
    """Tell whether database `other` (attached) has main's tables and rows, except in the user table."""
    schema = "SELECT type, name, tbl_name, sql FROM {}.sqlite_master ORDER BY type, name"
    if db.execute(schema.format("main")).fetchall() != db.execute(schema.format(other)).fetchall():
        return False
    for (table,) in db.execute("SELECT name FROM main.sqlite_master WHERE type = 'table'").fetchall():
        if table == USERS:
            continue
        where = f" WHERE name != '{USERS}'" if table == "sqlite_sequence" else ""  # the user table's next id
        mine, theirs = (f'SELECT * FROM {name}."{table}"{where}' for name in ("main", other))
        counts = {db.execute(f"SELECT COUNT(*) FROM ({rows})").fetchone()[0] for rows in (mine, theirs)}
        if len(counts) > 1 or db.execute(f"SELECT 1 FROM ({mine} EXCEPT {theirs})").fetchone():
            return False
    return True


def keep_users(database: Path, now: dict, key: str, printed: str) -> None:
    """Keep what the demo users command made of an untouched seed, if its only change is users nobody logged in as."""
    seed, about = _users_seed(key)

    def snapshot(part: Path) -> None:
        with contextlib.closing(sqlite3.connect(f"{database.as_uri()}?mode=ro", uri=True)) as source, \
                contextlib.closing(sqlite3.connect(part)) as copy:
            source.backup(copy)  # one consistent state, even if a server writes meanwhile
        with contextlib.closing(sqlite3.connect(part)) as copy:
            copy.execute("ATTACH DATABASE ? AS seed", (f"{_seed(now)[0].as_uri()}?mode=ro",))
            # A session, a last login or any other row would be something the command did not do: keep nothing.
            if not _only_users_differ(copy, "seed") or copy.execute(
                    f"SELECT 1 FROM {USERS} WHERE last_login IS NOT NULL").fetchone():
                raise sqlite3.DatabaseError("not only the demo users changed")

    USERS_SEEDS.mkdir(parents=True, exist_ok=True)
    try:
        write_whole(seed, snapshot)
    except (OSError, sqlite3.Error):
        return
    write_whole(about, lambda part: part.write_text(json.dumps({"stdout": printed}), encoding="utf-8"))


def users_from_seed(database: Path, start: bytes, key: str) -> str | None:
    """Copy the users seed `key` into a database that is still `start`; return what the command printed, or None."""
    seed, about = _users_seed(key)
    try:
        printed = json.loads(about.read_text(encoding="utf-8"))["stdout"]
        if not isinstance(printed, str):
            return None
        with contextlib.closing(sqlite3.connect(database.as_uri(), uri=True, isolation_level=None)) as db:
            db.execute("ATTACH DATABASE ? AS seed", (f"{seed.as_uri()}?mode=ro",))
            db.execute("BEGIN IMMEDIATE")  # no one else writes until the commit: what is checked is what is changed
            if database.read_bytes() != start or not _only_users_differ(db, "seed"):
                db.execute("ROLLBACK")
                return None
            for table, where in ((USERS, ""), ("sqlite_sequence", f" WHERE name = '{USERS}'")):
                db.execute(f"DELETE FROM main.{table}{where}")
                db.execute(f"INSERT INTO main.{table} SELECT * FROM seed.{table}{where}")
            db.execute("COMMIT")
    except (OSError, ValueError, LookupError, TypeError, sqlite3.Error):
        return None
    return printed
