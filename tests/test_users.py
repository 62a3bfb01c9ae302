"""Step 09: who is talking comes from the session.

The consumer under test runs in the same daphne Server whether `manage.py runserver` or the daphne CLI loads it,
so these tests talk to step 9's runserver; test_stages.py runs every step-9 check (login page, anonymous refusal,
the sender's name) under both, and the Redis test below puts alice on runserver and bob on the daphne CLI.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import sqlite3
import urllib.request

import pytest
from conftest import logged_in_once, run_python
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from workbook import WorkbookError, get_step
from workbook.login import cookie_header, login
from workbook.registry import project_files
from workbook.servers.server import TIMEOUT
from workbook.users import create_demo_users

USERS = get_step(9)
PASSWORDS = {"alice": "alice-password", "bob": "bob-password"}
# With test_users_browser.py and step 9's other tests on one xdist worker: they share step 9's server and database.
pytestmark = pytest.mark.xdist_group("server-09-users")


@pytest.fixture(scope="module")
def demo_users() -> dict[str, str]:
    """Create alice and bob in step 9's database, through the runner as a learner would."""
    create_demo_users(USERS.path)
    return PASSWORDS


@pytest.fixture
def step9(shared_server, demo_users):
    """Step 9's runserver, with its demo users in the database."""
    return shared_server(USERS, "runserver")


def sessionid(server, username: str = "alice") -> str:
    """Log in afresh: a session of this test's own, which it may end."""
    return login(server.http_url, username, PASSWORDS[username])


def shared_session(server, username: str = "alice") -> str:
    """Return a session for `username` that no test ends (logged in once per server)."""
    return logged_in_once(server, username, PASSWORDS[username])


def opening(server, path: str = "/ws/chat/", session: str | None = None):
    """Open a websocket as a browser of this page would: its Origin, and its session cookie if it has one."""
    headers = {"Origin": server.http_url.rstrip("/"), **(cookie_header(session) if session else {})}
    return connect(server.ws_url(path), additional_headers=headers, open_timeout=TIMEOUT)


async def refused_status(server, session: str | None = None) -> int:
    """Try a handshake; return the HTTP status it was refused with (failing if it was accepted)."""
    with pytest.raises(InvalidStatus) as refused:
        async with opening(server, session=session):
            pass
    return refused.value.response.status_code


async def hears(ws) -> dict:
    return json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))


def session_db() -> sqlite3.Connection:
    return sqlite3.connect(USERS.path / "db.sqlite3", timeout=TIMEOUT)


async def test_an_anonymous_handshake_is_refused_with_403(step9):
    """A client without a session cookie gets HTTP 403 on its handshake."""
    assert await refused_status(step9) == 403


async def test_a_logged_in_message_reaches_the_room_with_the_senders_name(step9):
    """alice and bob in one room both get alice's message, named as hers."""
    alice, bob = shared_session(step9, "alice"), shared_session(step9, "bob")
    async with opening(step9, "/ws/chat/users-room/", alice) as a, opening(step9, "/ws/chat/users-room/", bob) as b:
        await a.send(json.dumps({"message": "hello from alice"}))
        expected = {"message": "hello from alice", "user": "alice"}
        assert await hears(a) == expected
        assert await hears(b) == expected


async def test_a_frame_claiming_another_user_is_delivered_under_the_sessions_user(step9):
    """bob's frame saying "user": "alice" reaches the room as bob's."""
    bob = shared_session(step9, "bob")
    async with opening(step9, "/ws/chat/claims/", bob) as ws:
        await ws.send(json.dumps({"message": "I am alice, honest", "user": "alice"}))
        assert await hears(ws) == {"message": "I am alice, honest", "user": "bob"}


@pytest.mark.parametrize("cookie", ["forged-session-key-0123456789abcdef", "x" * 300, "'; DROP TABLE django_session"])
async def test_a_forged_sessionid_is_anonymous_and_refused_never_a_500(step9, cookie):
    """A sessionid the database does not hold makes the handshake anonymous: HTTP 403."""
    assert await refused_status(step9, cookie) == 403
    assert "Traceback" not in step9.log_text()


async def test_an_expired_session_is_anonymous_and_refused(step9):
    """A session whose expiry date has passed no longer logs the handshake in."""
    session = sessionid(step9, "bob")
    async with opening(step9, session=session):
        pass
    with session_db() as db:
        db.execute("UPDATE django_session SET expire_date = '2000-01-01 00:00:00' WHERE session_key = ?", (session,))
    assert await refused_status(step9, session) == 403


async def test_a_deleted_session_refuses_the_next_handshake_but_not_the_open_socket(step9):
    """Deleting the session (a logout elsewhere) refuses new handshakes; a socket already open keeps its user."""
    session = sessionid(step9, "alice")
    async with opening(step9, "/ws/chat/deleted/", session) as ws:
        with session_db() as db:
            db.execute("DELETE FROM django_session WHERE session_key = ?", (session,))
        assert await refused_status(step9, session) == 403
        await ws.send(json.dumps({"message": "still here"}))
        assert await hears(ws) == {"message": "still here", "user": "alice"}


def test_the_page_says_log_in_when_anonymous_and_names_the_user_when_logged_in(step9):
    """Anonymous, / links to the login page; with alice's session it shows her name and a logout button."""
    with urllib.request.urlopen(step9.http_url, timeout=TIMEOUT) as response:
        anonymous = response.read().decode()
    assert 'id="login-needed"' in anonymous and 'href="/accounts/login/?next=/"' in anonymous
    request = urllib.request.Request(step9.http_url, headers=cookie_header(shared_session(step9, "alice")))
    with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
        mine = response.read().decode()
    assert '<strong id="username">alice</strong>' in mine and 'id="logout-form"' in mine
    assert 'id="login-needed"' not in mine


def test_a_wrong_password_sets_no_session(step9):
    """The login form refuses a wrong password: no session, and the workbook says so in one line."""
    with pytest.raises(WorkbookError, match=r"alice could not log in at .* \(Please enter a correct username and "
                                            r"password\. Note that both fields may be case-sensitive\.\)"):
        login(step9.http_url, "alice", "not-her-password")


def test_make_step_9_users_prints_the_demo_logins(demo_users):
    """`python -m workbook users 9` prints both demo users and their passwords."""
    done = run_python("-m", "workbook", "users", "9")
    assert done.returncode == 0, done.stderr
    assert "alice / alice-password" in done.stdout and "bob / bob-password" in done.stdout


def test_running_demo_users_again_keeps_everyone_logged_in(step9):
    """A second `python manage.py demo_users` leaves alice's password hash alone, so her open session still names her.

    A new hash (set_password salts afresh) would end every session of hers: Django checks a session against a
    hash of the password on each request. Other tests run the command while this step's server is serving.
    The command itself runs here, not `make step-9 users`, which skips it while the users are as it left them.
    """
    session = shared_session(step9, "alice")
    again = run_python("manage.py", "demo_users", cwd=USERS.path)
    assert again.returncode == 0, again.stderr
    request = urllib.request.Request(step9.http_url, headers=cookie_header(session))
    with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
        assert '<strong id="username">alice</strong>' in response.read().decode()


def copy_of_step_9(into):
    """Copy step 9's files (no database, as in a fresh clone) into `into`; return the copy."""
    for name in project_files(USERS.path):
        (into / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(USERS.path / name, into / name)
    return into


def test_demo_users_refuses_with_debug_off_in_one_line(tmp_path):
    """With DEBUG = False the command stops with one line and creates nobody."""
    project = copy_of_step_9(tmp_path / "project")
    settings = project / "mychannels" / "settings.py"
    settings.write_text(settings.read_text().replace("DEBUG = True", "DEBUG = False"))
    done = run_python("manage.py", "demo_users", cwd=project)
    assert done.returncode == 1
    assert done.stderr.strip() == ("CommandError: DEBUG is off: demo users with public passwords belong on a "
                                   "development machine only")
    assert not (project / "db.sqlite3").exists()


def test_demo_users_on_an_unmigrated_database_says_to_migrate_first(tmp_path):
    """Run by hand before `migrate`, the command names the fix instead of a traceback."""
    project = copy_of_step_9(tmp_path / "project")
    done = run_python("manage.py", "demo_users", cwd=project)
    assert done.returncode == 1
    assert "run `python manage.py migrate` first" in done.stderr and "Traceback" not in done.stderr


def test_workbook_users_before_step_9_says_when_they_arrive():
    """Asking for demo users on a step without the command is one line naming step 9."""
    done = run_python("-m", "workbook", "users", "7")
    assert done.returncode == 1
    assert done.stderr.strip().endswith("the demo users arrive in step 9")


@pytest.mark.redis
async def test_alice_on_one_server_and_bob_on_another_share_a_room_through_redis(redis_servers, serve, demo_users):
    """Two step 9 processes on one Redis: bob, on the daphne one, hears alice's message under her name."""
    redis = redis_servers()
    env = {"REDIS_URL": redis.url}
    a, b = serve(USERS, env=env), serve(USERS, how="daphne", env=env)
    async with opening(a, "/ws/chat/shared-users/", sessionid(a, "alice")) as alice, \
            opening(b, "/ws/chat/shared-users/", sessionid(b, "bob")) as bob:
        await alice.send(json.dumps({"message": "across processes"}))
        assert await hears(bob) == {"message": "across processes", "user": "alice"}
        await bob.send(json.dumps({"message": "right back", "user": "alice"}))
        assert await hears(alice) == {"message": "across processes", "user": "alice"}
        assert await hears(alice) == {"message": "right back", "user": "bob"}


def test_the_doctor_says_a_refused_anonymous_handshake_needs_a_login_not_a_fix(step9):
    """Probing step 9 without a session is a login-required warning (exit 0), not a handshake-403 problem."""
    done = run_python("-m", "workbook", "doctor", step9.ws_url())
    assert done.returncode == 0, done.stdout
    assert "warning [login-required]" in done.stdout and "handshake-403" not in done.stdout
