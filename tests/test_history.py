"""Step 10: messages are saved with the session's user and replayed to whoever joins.

The consumer under test runs in the same daphne Server whether `manage.py runserver` or the daphne CLI loads it,
so these tests talk to step 10's runserver; test_stages.py runs every step-10 check (saving, replaying, refusing)
under both, and one test below replays through the daphne CLI what runserver saved.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import urllib.request

import pytest
from conftest import logged_in_once, run_python, saved_messages
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from workbook import get_step
from workbook.login import cookie_header, login
from workbook.servers.server import TIMEOUT
from workbook.users import create_demo_users

HISTORY = get_step(10)
PASSWORDS = {"alice": "alice-password", "bob": "bob-password"}
# With test_stages.py's step 10 checks on one xdist worker: they share step 10's servers and database.
pytestmark = pytest.mark.xdist_group(f"server-{HISTORY.id}")


@pytest.fixture(scope="module")
def demo_users() -> dict[str, str]:
    """Create alice and bob in step 10's database, through the runner as a learner would."""
    create_demo_users(HISTORY.path)
    return PASSWORDS


@pytest.fixture
def step10(shared_server, demo_users):
    """Step 10's runserver, with its demo users in the database."""
    return shared_server(HISTORY, "runserver")


def fresh_room() -> str:
    """A room no earlier run has used: the step's database keeps every message the suite ever sent."""
    return f"t-{secrets.token_hex(6)}"


def sessionid(server, username: str) -> str:
    """Return a session for `username` on this server: no test here ends one, so each user logs in once."""
    return logged_in_once(server, username, PASSWORDS[username])


def opening(server, room: str, session: str | None = None):
    """Open a room's websocket as a browser of this page would: its Origin, and its session cookie if it has one."""
    headers = {"Origin": server.http_url.rstrip("/"), **(cookie_header(session) if session else {})}
    return connect(server.ws_url(f"/ws/chat/{room}/"), additional_headers=headers, open_timeout=TIMEOUT)


async def hears(ws) -> dict:
    return json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))


async def say(server, room: str, session: str, messages: list[str]) -> None:
    """Send each message into the room and wait for its echo, so it is saved before the next one."""
    async with opening(server, room, session) as ws:
        for text in messages:
            await ws.send(json.dumps({"message": text}))
            while (await hears(ws))["message"] != text:
                pass


async def replayed(server, room: str, session: str) -> list[dict]:
    """Join the room, say hello, and return every frame that came before the hello's echo: the history."""
    async with opening(server, room, session) as ws:
        await ws.send(json.dumps({"message": "hello, I just joined"}))
        frames = []
        while (frame := await hears(ws))["message"] != "hello, I just joined":
            frames.append(frame)
        return frames


def history_command(room: str, *options: str) -> list[str]:
    """Run `python manage.py history ROOM` in step 10 and return its lines."""
    done = run_python("manage.py", "history", room, *options, cwd=HISTORY.path)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()


async def test_a_newcomer_gets_the_last_20_messages_oldest_first_before_anything_live(step10):
    """After 23 messages, bob's join replays messages 4 to 23 in order, each named as alice's."""
    room = fresh_room()
    said = [f"message {n}" for n in range(1, 24)]
    await say(step10, room, sessionid(step10, "alice"), said)
    assert await replayed(step10, room, sessionid(step10, "bob")) == [
        {"message": text, "user": "alice"} for text in said[-20:]
    ]


async def test_an_empty_room_replays_nothing(step10):
    """Joining a room nobody spoke in brings no frame before the joiner's own echo."""
    assert await replayed(step10, fresh_room(), sessionid(step10, "bob")) == []


async def test_a_rooms_history_never_leaks_into_another_room(step10):
    """Messages in one room are not replayed in another, nor in the lobby."""
    room, other = fresh_room(), fresh_room()
    await say(step10, room, sessionid(step10, "alice"), ["only for this room"])
    bob = sessionid(step10, "bob")
    assert await replayed(step10, other, bob) == []
    assert {"message": "only for this room", "user": "alice"} not in await replayed(step10, "lobby", bob)


async def test_a_message_is_saved_under_the_sessions_user_whatever_the_frame_claims(step10):
    """bob's frame claiming "user": "alice" is saved as bob's, and replayed as bob's."""
    room = fresh_room()
    async with opening(step10, room, sessionid(step10, "bob")) as ws:
        await ws.send(json.dumps({"message": "it was alice", "user": "alice"}))
        assert await hears(ws) == {"message": "it was alice", "user": "bob"}
    assert history_command(room)[0].endswith("  bob: it was alice")
    assert await replayed(step10, room, sessionid(step10, "alice")) == [{"message": "it was alice", "user": "bob"}]


@pytest.mark.parametrize("cookie", [None, "forged-session-key-0123456789abcdef"])
async def test_an_anonymous_or_forged_session_is_refused_with_403_and_saves_nothing(step10, cookie):
    """Without a real session the handshake gets HTTP 403, never a 500, and the room's history stays empty."""
    room = fresh_room()
    with pytest.raises(InvalidStatus) as refused:
        async with opening(step10, room, cookie):
            pass
    assert refused.value.response.status_code == 403
    assert saved_messages(HISTORY.path, room) == 0
    assert "Traceback" not in step10.log_text()


async def test_history_outlives_the_server_that_saved_it(serve, demo_users):
    """A message saved through runserver is replayed by a daphne process started afterwards."""
    room = fresh_room()
    first = serve(HISTORY)
    await say(first, room, sessionid(first, "alice"), ["still here tomorrow"])
    first.stop()
    second = serve(HISTORY, how="daphne")
    assert await replayed(second, room, sessionid(second, "bob")) == [{"message": "still here tomorrow",
                                                                      "user": "alice"}]


async def test_the_history_command_prints_the_rows_oldest_first_and_last_limits_them(step10):
    """`manage.py history ROOM` lists time, user and text in order; `--last 2` keeps the newest two; none is 0."""
    room, empty = fresh_room(), fresh_room()
    assert history_command(empty) == [f"0 message(s) in room '{empty}'"]
    await say(step10, room, sessionid(step10, "alice"), ["one", "two", "three"])
    lines = history_command(room)
    assert [line.split("  ", 1)[1] for line in lines[:-1]] == ["alice: one", "alice: two", "alice: three"]
    assert lines[-1] == f"3 message(s) in room '{room}'"
    assert [line.split("  ", 1)[1] for line in history_command(room, "--last", "2")[:-1]] == ["alice: two",
                                                                                              "alice: three"]


async def test_the_admin_lists_the_saved_messages_for_a_superuser(step10):
    """Message is registered: /admin/chat/message/ shows a room's rows to a staff user."""
    room = fresh_room()
    await say(step10, room, sessionid(step10, "alice"), ["seen in the admin"])
    env = {"DJANGO_SUPERUSER_PASSWORD": "admin-password-for-tests"}
    made = run_python("manage.py", "createsuperuser", "--noinput", "--username", "admin",
                      "--email", "admin@example.com", cwd=HISTORY.path, env=env)
    assert made.returncode == 0 or "already taken" in made.stderr, made.stderr
    session = login(step10.http_url, "admin", env["DJANGO_SUPERUSER_PASSWORD"])
    request = urllib.request.Request(f"{step10.http_url}admin/chat/message/?room={room}",
                                     headers=cookie_header(session))
    with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
        page = response.read().decode()
    assert "seen in the admin" in page


def test_the_page_says_joining_replays_the_last_20(step10):
    """The page names its step and tells the reader the history comes first."""
    with urllib.request.urlopen(step10.http_url, timeout=TIMEOUT) as response:
        page = response.read().decode()
    assert "Step 10 · History" in page and "last 20 messages" in page
