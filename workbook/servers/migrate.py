"""Migrate a project's database before the runner serves it: quietly, and only when it needs it.

AuthMiddlewareStack reads the session of any `sessionid` cookie a browser sends, so an unmigrated project answers
such a handshake with HTTP 500 (`no such table: django_session`). A stamp in .workbook/migrate/ fingerprints what
decides whether `migrate` has work to do: the Python and Django version, the settings file and the environment
values it reads (a stamp for each environment), the project's migration files, and how many migrations the
database records. When it matches, nothing runs; when in doubt,
`migrate` runs (a no-op takes well under a second). A file lock keeps two servers of one project from migrating
at once. WORKBOOK_MIGRATE=0 (in the environment or a server's env) leaves the database alone.

A database that `migrate` created from nothing is kept as a seed (workbook/servers/seeds.py), keyed by that same
fingerprint: a copy of the project without a database yet gets a copy of the seed instead of a `migrate`.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ..environment.pythonpath import importable
from ..errors import WorkbookError, summarize_failure
from ..project import READS_ENV, settings_module
from ..registry import ROOT, project_files
from ..state import STATE_DIR, TIMEOUT, shown
from .seeds import applied, from_seed, keep_seed

if TYPE_CHECKING:
    from .server import Server

STAMPS = STATE_DIR / "migrate"

# Run by the server's own Python inside the project, as `python manage.py migrate` would be; prints the
# database file it migrated (sqlite only) so that the next start can check it without loading Django. It skips
# the system checks: the server's own start reports those, in the words the learner expects.
_MIGRATE = """\
import json, os, sys
sys.path.insert(0, os.getcwd())
os.environ.setdefault("DJANGO_SETTINGS_MODULE", sys.argv[1])
import django
django.setup()
print("@@loaded@@", flush=True)
from django.core.management import call_command
from django.db import connection
call_command("migrate", interactive=False, verbosity=0, skip_checks=True)
name = str(connection.settings_dict["NAME"])
sqlite = connection.vendor == "sqlite" and name != ":memory:" and "mode=memory" not in name
print("@@migrated@@" + json.dumps(os.path.abspath(name) if sqlite else None))
"""


def wanted(env: dict[str, str] | None = None) -> bool:
    """Tell whether the runner should migrate: yes, unless WORKBOOK_MIGRATE=0 in `env` or the environment."""
    value = (env or {}).get("WORKBOOK_MIGRATE", os.environ.get("WORKBOOK_MIGRATE", "1"))
    return value.strip().lower() not in {"0", "no", "false", "off"}




def inputs(project: Path, python: str, env: dict[str, str]) -> dict:
    """Fingerprint what decides which migrations exist and where: interpreter, Django, settings, migration files."""
    digest = hashlib.sha256()
    settings = env.get("WORKBOOK_SETTINGS") or env.get("DJANGO_SETTINGS_MODULE") or settings_module(project)
    settings_file = project / (settings.replace(".", "/") + ".py")
    names = [n for n in project_files(project) if "/migrations/" in f"/{n}" and n.endswith(".py")]
    settings_name = settings_file.relative_to(project).as_posix()
    texts = {}
    for name in [settings_name, *names]:
        try:
            texts[name] = (project / name).read_bytes()
        except OSError:
            texts[name] = b"missing"
        digest.update(name.encode() + b"\0" + texts[name] + b"\0")
    # The values the settings file reads from the environment count too (final/ takes its database path from
    # DJANGO_SQLITE_PATH), hashed: a stamp must not hold a secret.
    read = sorted(set(READS_ENV.findall(texts[settings_name].decode("utf-8", "replace"))))
    from_env = hashlib.sha256(json.dumps([[key, env.get(key)] for key in read]).encode()).hexdigest()
    django = None
    if os.path.abspath(python) == os.path.abspath(sys.executable):  # unresolved: a venv python resolves to its base
        django = django_version()
    return {"python": python, "django": django, "settings": settings, "files": digest.hexdigest(), "env": from_env}


def django_version() -> str | None:
    """Read the installed Django's VERSION line without importing Django.

    importlib.metadata would take a fifth of a second here (it scans every installed distribution), on the path of
    every `make step-N run`; Django's own __init__.py names its version in one line.
    """
    spec = importlib.util.find_spec("django")
    try:
        text = Path(spec.origin).read_text(encoding="utf-8") if spec and spec.origin else ""
    except OSError:
        return None
    match = re.search(r"^VERSION = (\(.*\))$", text, re.M)
    return match.group(1) if match else None


def paths(project: Path, now: dict) -> tuple[Path, Path, Path]:
    """The project's migrate stamp for the environment in `now`, its lock, and the log of its last `migrate` (the
    demo users' stamp reads the first).

    One stamp per environment the settings read: a project served now with REDIS_URL and now without (the Redis
    tests and the stage tests take turns with one step) keeps both stamps valid instead of migrating at each turn.
    """
    key = _project_key(project)
    return (STAMPS / f"{stamp_name(project, now)}.json", STAMPS / f"{key}.lock",
            STATE_DIR / "logs" / f"{project.name}-migrate-{key[:6]}.log")


def stamp_name(project: Path, now: dict) -> str:
    """Name a stamp of `project` for the environment in `now`: one per project directory and environment (the
    demo users' stamps are named the same way)."""
    return f"{_project_key(project)}-{now['env'][:12]}"


def _project_key(project: Path) -> str:
    return hashlib.sha256(str(project).encode()).hexdigest()[:16]


def up_to_date(stamp: Path, now: dict) -> bool:
    """Tell whether the stamp matches: same inputs, and the database still records what migrate left in it."""
    try:
        saved = json.loads(stamp.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if now["django"] is None or saved.get("inputs") != now:
        return False
    database = saved.get("database")
    return database is not None and saved.get("applied") is not None and applied(database) == saved["applied"]


@contextlib.contextmanager
def _locked(path: Path):
    """Hold an exclusive lock on `path` (created if needed) for the block: one migrate per project at a time."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as handle:
        if os.name == "nt":
            import msvcrt

            handle.seek(0)
            while True:
                try:
                    msvcrt.locking(handle.fileno(), msvcrt.LK_LOCK, 1)
                    break
                except OSError:  # LK_LOCK gives up after ten seconds: keep waiting
                    continue
            try:
                yield
            finally:
                handle.seek(0)
                msvcrt.locking(handle.fileno(), msvcrt.LK_UNLCK, 1)
        else:
            import fcntl

            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def migrate_if_needed(server: Server) -> bool:
    """Bring the project's database up to date before `server` starts, when it needs it; return whether it did."""
    if not wanted(server.extra_env):
        return False
    project, python = server.project, server.command()[0]
    env = {**os.environ, **server.extra_env}
    now = inputs(project, python, env)
    stamp, lock, log = paths(project, now)
    if up_to_date(stamp, now):
        return False
    with _locked(lock):
        now = inputs(project, python, env)
        stamp = paths(project, now)[0]
        if up_to_date(stamp, now):  # another server of this project migrated while we waited
            return False
        database = from_seed(project, now)
        if database is None:
            existed = set(project.rglob("*.sqlite3"))
            database = _migrate(project, python, env, log, server.label)
            if database is not None and Path(database) not in existed:
                keep_seed(project, Path(database), now)
        stamp.write_text(json.dumps({"inputs": now, "database": database, "applied": applied(database)}),
                         encoding="utf-8")
    return True


def _migrate(project: Path, python: str, env: dict[str, str], log: Path, label: str) -> str | None:
    """Run `migrate` with the server's Python, settings and environment; raise one line when it fails."""
    env = importable({**env, "PYTHONDONTWRITEBYTECODE": "1"}, ROOT)
    settings = settings_module(project)
    log.parent.mkdir(parents=True, exist_ok=True)
    try:
        done = subprocess.run([python, "-c", _MIGRATE, settings], cwd=project, env=env, stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=max(TIMEOUT, 60) * 2)
        output, code = done.stdout + done.stderr, done.returncode
    except subprocess.TimeoutExpired as slow:
        output, code = f"@@loaded@@\nmigrate took over {slow.timeout:.0f} s, then was stopped", 1
    log.write_text(output, encoding="utf-8")
    if "@@loaded@@" not in output:
        return None  # the project does not load: the server's own start says why, in the learner's terms
    if code != 0 or "@@migrated@@" not in output:
        shown_log = shown(log)
        raise WorkbookError(
            f"{label}: `python manage.py migrate` failed: {summarize_failure(output)} (full output: {shown_log})"
        )
    return json.loads(output.rpartition("@@migrated@@")[2].splitlines()[0])
