"""Step 9's demo users on copies of the step: the stamp skips the command, and a users seed spares each new copy.

Each test counts the runs of `manage.py demo_users` by wrapping the runner's run_demo_users, and checks what a run
would leave: alice and bob, with hashes their passwords verify, and the lines the command prints.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess

import pytest
from conftest import by_turns
from test_users import PASSWORDS, copy_of_step_9, refused_status

import workbook.demo_users
import workbook.servers.server
from workbook.login import login
from workbook.servers import seeds
from workbook.servers.migrate import inputs, migrate_if_needed
from workbook.servers.server import Server
from workbook.users import create_demo_users


@pytest.fixture
def runs(monkeypatch) -> list:
    """Count the runs of the demo_users command, served by the test's own interpreter (then its Django is known)."""
    # The test's own interpreter serves the copies, as .venv's does `make step-9 users`.
    monkeypatch.setattr(workbook.servers.server, "in_venv", lambda: True)
    ran, run = [], workbook.demo_users.run_demo_users
    monkeypatch.setattr(workbook.demo_users, "run_demo_users", lambda *args: ran.append(args[0]) or run(*args))
    return ran


def users_of(project) -> list[tuple[str, str]]:
    with sqlite3.connect(project / "db.sqlite3") as db:
        return db.execute("SELECT username, password FROM auth_user ORDER BY username").fetchall()


def own_command(project) -> None:
    """Add a comment naming the copy's directory to its command file: no earlier run can have kept a seed for it."""
    command = project / workbook.demo_users.COMMAND
    command.write_text(command.read_text() + f"# {project}\n")


def users_seed_of(project) -> tuple:
    """Migrate the copy; return its database, the key of the users seed it would get or leave, and the fingerprint."""
    server = Server(project, port=1)  # never started: it names the interpreter, as create_demo_users() does
    migrate_if_needed(server)
    now = inputs(project, server.command()[0], dict(os.environ))
    seed = workbook.demo_users._users_seed(project, workbook.demo_users._facts(project, now))
    return seed.database, seed.key, seed.now


def kept(key: str) -> list[bool]:
    return [path.exists() for path in seeds._users_seed(key)]


def verifies(hashed: str, password: str) -> bool:
    """Check a hash as authenticate() does under Django's default hasher, without loading the project."""
    from django.contrib.auth.hashers import PBKDF2PasswordHasher

    return PBKDF2PasswordHasher().verify(password, hashed)


def test_make_step_9_users_skips_the_command_until_a_password_changes_and_then_resets_it(tmp_path, runs):
    """The command's outcome is kept; logins leave it skipped; after alice's password changed by hand it runs again."""
    project = copy_of_step_9(tmp_path / "project")
    printed = create_demo_users(project)
    assert "alice / alice-password" in printed and "bob / bob-password" in printed
    before = len(runs)  # 0 when a users seed for step 9 was there already, else 1
    with sqlite3.connect(project / "db.sqlite3") as db:  # what a login writes: a last_login, a session
        db.execute("UPDATE auth_user SET last_login = '2030-01-01 00:00:00' WHERE username = 'alice'")
        db.execute("INSERT INTO django_session VALUES ('a-session-key', 'data', '2030-01-01 00:00:00')")
    assert create_demo_users(project) == printed and len(runs) == before
    with sqlite3.connect(project / "db.sqlite3") as db:  # alice's password is now bob's: changed by hand
        db.execute("UPDATE auth_user SET password = (SELECT password FROM auth_user WHERE username = 'bob') "
                   "WHERE username = 'alice'")
    assert create_demo_users(project) == printed and runs[before:] == [project]
    [(_, alice), (_, bob)] = users_of(project)
    assert verifies(alice, "alice-password") and verifies(bob, "bob-password")


async def test_a_fresh_copy_is_migrated_when_served_and_gets_its_users_from_the_seed_without_the_command(
        tmp_path, runs, serve):
    """A served copy with no database is migrated (a stale cookie gets 403, not 500); its users come from the seed.

    Both server kinds migrate in the same place (Server.prepare, before either starts): one kind is enough. The
    users arrive while the copy is being served, and alice then logs in on it.
    """
    first = copy_of_step_9(tmp_path / "first")
    printed = create_demo_users(first)  # runs the command only if no earlier copy left a users seed
    del runs[:]
    clone = copy_of_step_9(tmp_path / "clone")
    server = serve(clone)
    assert await refused_status(server, "leftover-from-another-tutorial") == 403
    assert "no such table" not in server.log_text()
    assert create_demo_users(clone) == printed and runs == []
    assert users_of(clone) == users_of(first)
    assert login(server.http_url, "alice", PASSWORDS["alice"])
    assert create_demo_users(clone) == printed and runs == []  # its stamp was written as after a run


def test_a_copy_whose_database_changed_after_the_seed_copy_runs_the_command_and_keeps_no_seed(
        tmp_path, runs, monkeypatch):
    """A row added to the copied seed makes the database no longer the seed: the command runs, and nothing is kept.

    The command itself is stood in for here: what a real run does to such a database is the stamp test's last run.
    """
    project = copy_of_step_9(tmp_path / "project")
    own_command(project)
    database, key, _ = users_seed_of(project)
    with sqlite3.connect(database) as db:
        db.execute("INSERT INTO django_session VALUES ('a-session-key', 'data', '2030-01-01 00:00:00')")
    ran = []
    monkeypatch.setattr(workbook.demo_users, "run_demo_users", lambda project, python: ran.append(project) or
                        subprocess.CompletedProcess([python], 0, stdout="alice / alice-password\n", stderr=""))
    assert create_demo_users(project) == "alice / alice-password\n" and ran == [project]
    assert kept(key) == [False, False]
    with sqlite3.connect(database) as db:
        assert db.execute("SELECT session_key FROM django_session").fetchall() == [("a-session-key",)]
        assert db.execute("SELECT COUNT(*) FROM auth_user").fetchone() == (0,)  # no user table copied in


def test_a_changed_command_file_makes_a_new_users_seed_that_the_next_copy_uses(tmp_path, runs):
    """A copy whose command file differs runs it and keeps a seed of its own; a second such copy is spared the run."""
    copies = [copy_of_step_9(tmp_path / name) for name in ("one", "two")]
    for project in copies:
        command = project / workbook.demo_users.COMMAND
        command.write_text(command.read_text() + f"# {tmp_path}\n")  # the same change in both
    _, key, _ = users_seed_of(copies[0])
    assert kept(key) == [False, False]
    printed = create_demo_users(copies[0])
    assert runs == [copies[0]] and kept(key) == [True, True]
    assert create_demo_users(copies[1]) == printed and runs == [copies[0]]
    assert users_of(copies[1]) == users_of(copies[0])


def test_a_session_written_while_the_command_ran_keeps_no_users_seed(tmp_path, runs):
    """What the command left is kept only when users are all it changed: a login meanwhile (a session) keeps nothing."""
    project = copy_of_step_9(tmp_path / "project")
    own_command(project)
    database, key, now = users_seed_of(project)
    with sqlite3.connect(database) as db:  # the command's users, and a server's session written meanwhile
        db.execute("INSERT INTO auth_user (username, password, is_superuser, first_name, last_name, email, is_staff, "
                   "is_active, date_joined) VALUES ('alice', 'x', 0, '', '', '', 0, 1, '2030-01-01 00:00:00')")
        db.execute("INSERT INTO django_session VALUES ('a-session-key', 'data', '2030-01-01 00:00:00')")
    seeds.keep_users(database, now, key, "alice / alice-password\n")
    assert kept(key) == [False, False]
    with sqlite3.connect(database) as db:
        db.execute("DELETE FROM django_session")
    seeds.keep_users(database, now, key, "alice / alice-password\n")  # the same, with users the only change
    assert kept(key) == [True, True] and runs == []


def test_serving_by_turns_with_and_without_redis_url_runs_the_command_once_for_each(tmp_path, runs, monkeypatch):
    """Each environment the settings read keeps its own stamp: turns between them never run the command again."""
    project = copy_of_step_9(tmp_path / "project")
    own_command(project)  # no users seed: each environment's first call runs the command
    printed = by_turns(monkeypatch, "REDIS_URL", "redis://127.0.0.1:9", lambda: create_demo_users(project))
    assert len(set(printed)) == 1 and "alice / alice-password" in printed[0]
    assert runs == [project, project]
