"""The runner migrates a project's database before serving it: only when needed, quietly, and never into git."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import STARTED_GROUPS, by_turns, need, run_python, steps
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from workbook import get_step
from workbook.doctor.probe import STALE_COOKIE
from workbook.errors import WorkbookError
from workbook.registry import ROOT, project_files
from workbook.servers import migrate, seeds
from workbook.servers.migrate import STAMPS, migrate_if_needed
from workbook.servers.process import group_alive
from workbook.servers.server import TIMEOUT, Server, free_port

FINAL = pytest.param(ROOT / "final", id="final")
SESSION_KEY = STALE_COOKIE.partition("=")[2]
# A migration file with nothing in it: enough to change what migrate has to do.
EMPTY_MIGRATION = "from django.db import migrations\n\n\nclass Migration(migrations.Migration):\n    operations = []\n"


def fresh_copy(project, into):
    """Copy a stage's files (no database, as in a fresh clone) into `into`/<its name>; return the copy."""
    source = getattr(project, "path", project)
    copy = into / source.name
    for name in project_files(source):
        (copy / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source / name, copy / name)
    return copy


@pytest.fixture(scope="module")
def clone_of(tmp_path_factory):
    """Return one fresh copy per stage for this module: the first server to serve it migrates it."""
    copies = {}

    def get(project):
        key = str(getattr(project, "path", project))
        if key not in copies:
            copies[key] = fresh_copy(project, tmp_path_factory.mktemp("clone"))
        return copies[key]

    return get


async def echo_with_cookie(server: Server) -> object:
    """Open the socket as a browser holding a stale sessionid cookie would, send a message, return the reply."""
    headers = {"Origin": server.http_url.rstrip("/"), "Cookie": STALE_COOKIE}
    async with connect(server.ws_url(), additional_headers=headers, open_timeout=TIMEOUT) as ws:
        await ws.send('{"message": "hi"}')
        return await asyncio.wait_for(ws.recv(), TIMEOUT)


@pytest.mark.parametrize("how", ["runserver", "daphne"])
@pytest.mark.parametrize("project", [*steps(4, 5, 6, 7), FINAL])
async def test_a_forged_sessionid_cookie_is_let_in_as_anonymous_on_a_fresh_clone(project, how, clone_of, serve):
    """A handshake carrying a session key no server issued is accepted and echoes, never HTTP 500."""
    copy = clone_of(project)
    server = serve(copy, how=how)
    if copy.name == "final":
        # final/ chats only with a logged-in user: the anonymous handshake is refused, not answered with 500.
        with pytest.raises(InvalidStatus, match="HTTP 403"):
            await echo_with_cookie(server)
    else:
        assert await echo_with_cookie(server) == '{"message": "hi"}'
    log = server.log_text()
    assert "Exception inside application" not in log and "unapplied migration" not in log, log
    # The cookie names no session in the database, so AuthMiddleware can only have found AnonymousUser.
    with sqlite3.connect(copy / "db.sqlite3") as db:
        sessions = db.execute("SELECT COUNT(*) FROM django_session WHERE session_key = ?", (SESSION_KEY,))
        assert sessions.fetchone() == (0,)
        assert db.execute("SELECT COUNT(*) FROM auth_user").fetchone() == (0,)


def _git_status(project: Path) -> str:
    # Only the project's own directory: the tests of other stages, on the other worker, come and go in theirs.
    done = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all", "--", str(project)],
                          cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout


def _git_ignores(path: Path) -> bool:
    return subprocess.run(["git", "check-ignore", "-q", str(path)], cwd=ROOT).returncode == 0


# The session's shared runserver of each stage, which the stage tests start anyway (and which the xdist group of a
# `project` parameter puts on their worker): serving it is what this test checks, so it need not start another.
# The step 4 one shares its worker with test_run_says_nothing_…, which deletes that step's database.
@pytest.mark.parametrize("project", [*steps(), pytest.param(get_step("final"), id="final")])
def test_serving_every_stage_migrates_it_without_a_warning_and_leaves_git_status_as_it_was(project, shared_server):
    """Each step and final/ served by runserver prints no unapplied-migrations warning and adds nothing to git."""
    need(shutil.which("git") is not None and (ROOT / ".git").exists(), "git and a clone",
         "install git and work in a git clone of the workbook")
    before = _git_status(project.path)
    log = shared_server(project, "runserver").wait_for_log(r"Quit the server with").string
    assert "unapplied migration" not in log, log
    database = project.path / "db.sqlite3"
    assert database.is_file() and "db.sqlite3" not in project_files(database.parent)
    # Whether this test started the server or an earlier one did, git never shows the database nor its journals.
    # Nor the database `manage.py test` makes for a live server (final/, step 11) and its journals.
    assert all(_git_ignores(project.path / (name + suffix)) for name in ("db.sqlite3", "test-db.sqlite3")
               for suffix in ("", "-journal", "-wal", "-shm"))
    assert _git_status(project.path) == before


def test_serving_by_turns_with_and_without_redis_url_migrates_once_for_each(tmp_path, monkeypatch):
    """The settings read REDIS_URL, so each environment is checked once; after that, taking turns migrates nothing."""
    copy = fresh_copy(get_step(7), tmp_path)
    server = Server(copy)
    done = by_turns(monkeypatch, "REDIS_URL", "redis://127.0.0.1:9", lambda: migrate_if_needed(server))
    assert done == [True, True, False, False, False, False]
    (copy / "db.sqlite3").unlink()  # and a database gone is migrated anew, whichever environment comes first
    assert migrate_if_needed(server) is True


def test_a_second_start_does_not_migrate_again_but_a_deleted_database_is_migrated_anew(tmp_path):
    """The stamp spares the second start; removing db.sqlite3 (or a new migration file) makes the next one migrate."""
    copy = fresh_copy(get_step(4), tmp_path)
    server = Server(copy)
    assert [migrate_if_needed(server), migrate_if_needed(server)] == [True, False]
    (copy / "db.sqlite3").unlink()
    assert migrate_if_needed(server) is True
    (copy / "chat" / "migrations" / "0001_initial.py").write_text(EMPTY_MIGRATION)
    assert [migrate_if_needed(server), migrate_if_needed(server)] == [True, False]


def test_a_copy_of_a_migrated_project_starts_from_its_seed_and_a_changed_one_is_migrated(tmp_path, monkeypatch):
    """A second copy gets the database migrate made for the first; one with another migration file runs migrate."""
    first = fresh_copy(get_step(4), tmp_path / "first")
    assert migrate_if_needed(Server(first)) is True
    ran: list[Path] = []
    real_migrate = migrate._migrate

    def counted(project, *args):
        ran.append(project)
        return real_migrate(project, *args)

    monkeypatch.setattr(migrate, "_migrate", counted)
    second = fresh_copy(get_step(4), tmp_path / "second")
    assert migrate_if_needed(Server(second)) is True and ran == []
    tables = "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
    with sqlite3.connect(first / "db.sqlite3") as one, sqlite3.connect(second / "db.sqlite3") as two:
        assert one.execute(tables).fetchall() == two.execute(tables).fetchall()
        assert seeds.applied(str(second / "db.sqlite3")) == seeds.applied(str(first / "db.sqlite3")) > 0
    assert migrate_if_needed(Server(second)) is False
    third = fresh_copy(get_step(4), tmp_path / "third")
    # A comment naming this run's directory: no earlier run can have left a seed for these migrations.
    (third / "chat" / "migrations" / "0001_initial.py").write_text(EMPTY_MIGRATION + f"# {tmp_path}\n")
    assert migrate_if_needed(Server(third)) is True and ran == [third]


def test_a_database_that_held_data_before_migrate_is_never_kept_as_a_seed(tmp_path, monkeypatch):
    """Migrating a database that already existed (rows and all) leaves no seed: the next copy runs migrate itself."""
    used = fresh_copy(get_step(4), tmp_path / "used")
    assert migrate_if_needed(Server(used)) is True
    with sqlite3.connect(used / "db.sqlite3") as db:
        db.execute("INSERT INTO django_session VALUES ('k', 'data', '2999-01-01')")
    (used / "chat" / "migrations" / "0001_initial.py").write_text(EMPTY_MIGRATION + f"# {tmp_path}\n")
    server = Server(used)
    assert migrate_if_needed(server) is True
    # This fingerprint's seed only: the other workers keep seeds of their own meanwhile.
    now = migrate.inputs(used, server.command()[0], {**os.environ, **server.extra_env})
    assert not any(path.exists() for path in seeds._seed(now))
    ran: list[Path] = []
    real_migrate = migrate._migrate
    monkeypatch.setattr(migrate, "_migrate", lambda project, *args: ran.append(project) or real_migrate(project, *args))
    fresh = fresh_copy(get_step(4), tmp_path / "fresh")
    (fresh / "chat" / "migrations" / "0001_initial.py").write_text(EMPTY_MIGRATION + f"# {tmp_path}\n")
    assert migrate_if_needed(Server(fresh)) is True and ran == [fresh]
    with sqlite3.connect(fresh / "db.sqlite3") as db:
        assert db.execute("SELECT COUNT(*) FROM django_session").fetchone() == (0,)


def test_a_database_path_the_settings_read_from_the_environment_is_migrated_where_it_points(tmp_path):
    """final/ takes DJANGO_SQLITE_PATH: a server given another path gets that database migrated, not a stale stamp."""
    copy = fresh_copy(ROOT / "final", tmp_path)
    assert migrate_if_needed(Server(copy)) is True
    elsewhere = tmp_path / "elsewhere.sqlite3"
    moved = Server(copy, env={"DJANGO_SQLITE_PATH": str(elsewhere)})
    assert [migrate_if_needed(moved), migrate_if_needed(moved)] == [True, False]
    assert seeds.applied(str(elsewhere)) == seeds.applied(str(copy / "db.sqlite3")) > 0
    stamps = "\n".join(path.read_text() for path in STAMPS.glob("*.json"))
    assert str(elsewhere) in stamps and "DJANGO_SQLITE_PATH" not in stamps


def test_two_servers_of_one_project_starting_at_once_migrate_it_once(tmp_path):
    """Started together, one server migrates while the other waits on the lock and then finds nothing to do."""
    copy = fresh_copy(get_step(5), tmp_path)
    results: list[bool] = []
    starters = [threading.Thread(target=lambda: results.append(migrate_if_needed(Server(copy)))) for _ in range(2)]
    for starter in starters:
        starter.start()
    for starter in starters:
        starter.join(TIMEOUT * 4)
    assert sorted(results) == [False, True]


def test_a_migration_that_fails_stops_the_start_with_one_line_naming_the_log(tmp_path, serve):
    """A broken migration file: the start fails with one line naming the error and the full log; no server runs."""
    copy = fresh_copy(get_step(4), tmp_path)
    (copy / "chat" / "migrations" / "0001_initial.py").write_text("raise RuntimeError('a broken migration')\n")
    with pytest.raises(WorkbookError) as failed:
        serve(copy)
    message = str(failed.value)
    assert len(message.splitlines()) == 1
    assert message.startswith("04-routing: `python manage.py migrate` failed: RuntimeError: a broken migration")
    log = Path(message.rpartition("(full output: ")[2].removesuffix(")"))
    assert "Traceback" in (log if log.is_absolute() else Path.cwd() / log).read_text()


def test_workbook_migrate_0_leaves_the_database_alone(tmp_path):
    """With WORKBOOK_MIGRATE=0 in a server's env nothing is migrated, nor stamped."""
    copy = fresh_copy(get_step(4), tmp_path)
    server = Server(copy, env={"WORKBOOK_MIGRATE": "0"})
    assert migrate_if_needed(server) is False
    assert not (copy / "db.sqlite3").exists()
    # This copy's stamp only: the other workers write stamps of their own meanwhile.
    now = migrate.inputs(copy, server.command()[0], {**os.environ, **server.extra_env})
    assert not migrate.paths(copy, now)[0].exists()


# It deletes steps/04-routing/db.sqlite3 itself: it shares a worker with the tests that serve step 4 from there.
@pytest.mark.xdist_group("server-04-routing")
def test_run_says_nothing_about_migrations_on_a_first_run(tmp_path):
    """`python -m workbook run 4` on an unmigrated step prints only its server's lines, echoes, adds nothing to git."""
    database = get_step(4).path / "db.sqlite3"
    in_git = shutil.which("git") is not None and (ROOT / ".git").exists()
    before = _git_status(get_step(4).path) if in_git else ""
    database.unlink(missing_ok=True)
    port = free_port()
    out = open(tmp_path / "run.log", "w+")
    process = subprocess.Popen([sys.executable, "-m", "workbook", "run", "4", "--port", str(port), "--no-reload"],
                               cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    STARTED_GROUPS.append(process.pid)
    try:
        deadline = time.monotonic() + TIMEOUT * 4
        while "is up on" not in (tmp_path / "run.log").read_text():
            assert process.poll() is None and time.monotonic() < deadline, (tmp_path / "run.log").read_text()
            time.sleep(0.05)
        server = Server(get_step(4), port=port)
        assert asyncio.run(echo_with_cookie(server)) == '{"message": "hi"}'
    finally:
        os.killpg(process.pid, signal.SIGINT)
        process.wait(TIMEOUT)
        out.close()
    printed = (tmp_path / "run.log").read_text()
    assert database.is_file() and not group_alive(process.pid)
    assert "migrat" not in printed.lower() and "Traceback" not in printed, printed
    # A database made anew adds nothing that git shows.
    assert (_git_status(get_step(4).path) if in_git else "") == before


def test_the_doctor_warns_of_a_migration_the_database_lacks_but_not_of_the_session_table(tmp_path):
    """A migrated project that gains a migration file gets the unapplied-migrations warning, and exits 0."""
    copy = fresh_copy(get_step(4), tmp_path)
    assert migrate_if_needed(Server(copy)) is True
    (copy / "chat" / "migrations" / "0001_initial.py").write_text(EMPTY_MIGRATION)
    result = run_python("-m", "workbook", "doctor", str(copy))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "warning [unapplied-migrations] db.sqlite3 lacks 1 migration(s)" in result.stdout
    assert "no-session-table" not in result.stdout
