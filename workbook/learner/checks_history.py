"""The checks of step 10: a Message model, each message saved with the async ORM, the last 20 replayed on joining."""

from __future__ import annotations

import asyncio
import json
import secrets
import subprocess

from ..demo_users import create_demo_users
from ..doctor.hints import from_traceback, hint_for
from ..errors import WorkbookError
from ..login import cookie_header, login
from ..state import TIMEOUT
from .check_base import IN_PROCESS, QUICK, Failed, Run, check

PASSWORDS = {"alice": "alice-password", "bob": "bob-password"}
COMMAND = "chat/management/commands/history.py"
HISTORY = 20

@check("chat.Message has room, user (a foreign key to the user), text and created, with its migration and admin",
       served=IN_PROCESS)
def message_model(run: Run) -> None:
    facts = run.facts()["message_model"]
    if not facts["model"]:
        raise Failed("the chat app has no Message model",
                     "in chat/models.py: class Message(models.Model) with room, user, text and created fields")
    missing = [name for name in ("room", "user", "text", "created") if name not in facts["fields"]]
    if missing:
        raise Failed(f"Message has no {', '.join(missing)}",
                     "room = CharField(max_length=50), user = ForeignKey(settings.AUTH_USER_MODEL, ...), "
                     "text = TextField(), created = DateTimeField(auto_now_add=True)")
    if not facts["user_fk"]:
        raise Failed("Message.user is not a foreign key to the user model",
                     "user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)")
    if not facts["migrated"]:
        raise Failed("chat/models.py has changes no migration holds",
                     "run `python manage.py makemigrations chat` in the workspace (the runner then migrates)")
    if not facts["admin"]:
        raise Failed("Message is not registered in the admin", "in chat/admin.py: admin.site.register(Message)")


def _sessions(run: Run) -> dict[str, str]:
    """Log alice and bob in over HTTP, creating them first with the project's demo_users command if need be."""
    if getattr(run, "history_sessions", None) is None:
        run.history_sessions = _log_in(run)  # a login hashes a password: once per run is enough
    return run.history_sessions


def _log_in(run: Run) -> dict[str, str]:
    server = run.server()
    try:
        return {name: login(server.http_url, name, password) for name, password in PASSWORDS.items()}
    except WorkbookError:
        pass
    try:
        # As `make users` does: a fresh copy of a step gets the users the command made of the same seed before.
        create_demo_users(run.project, run.label)
    except WorkbookError:
        raise Failed("alice and bob cannot log in, and `python manage.py demo_users` failed",
                     "keep step 09's chat/management/commands/demo_users.py, then run `python -m workbook users "
                     "workspace`") from None
    return {name: login(server.http_url, name, password) for name, password in PASSWORDS.items()}


def _room() -> str:
    """A room no earlier run used: the workspace's database keeps every message ever checked."""
    return f"check-{secrets.token_hex(6)}"


async def _say(server, origin: str, session: str, room: str, messages: list[str]) -> list:
    """Join `room` as the session's user and send each message, waiting for its echo; return the echoes."""
    from websockets.asyncio.client import connect

    heard = []
    headers = {"Origin": origin, **cookie_header(session)}
    async with connect(server.ws_url(f"/ws/chat/{room}/"), additional_headers=headers, open_timeout=QUICK) as ws:
        for text in messages:
            await ws.send(json.dumps({"message": text}))
            while True:  # frames from before (a replayed history) may come first
                frame = json.loads(await asyncio.wait_for(ws.recv(), QUICK))
                if frame.get("message") == text:
                    heard.append(frame)
                    break
    return heard


def _history(run: Run, room: str) -> list[str]:
    """Run the project's `history` command for a room; return its lines."""
    if not (run.project / COMMAND).is_file():
        raise Failed(f"{COMMAND} does not exist", f"copy {COMMAND} from steps/10-history: `python manage.py "
                                                  "history ROOM` prints a room's saved messages")
    done = subprocess.run([run.server().command()[0], "manage.py", "history", room], cwd=run.project,
                          env=run._env(), capture_output=True, text=True, timeout=TIMEOUT * 4,
                          stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        problem = from_traceback(done.stderr, run.project)
        last = (done.stderr.strip().splitlines() or ["it printed nothing"])[-1]
        raise Failed(f"`python manage.py history {room}`: {problem or last}", hint_for(done.stderr, last))
    return done.stdout.strip().splitlines()


def _failed_socket(outcome, log: str, run: Run, default: str) -> Failed:
    if "SynchronousOnlyOperation" in log:
        # A foreign key read without select_related raises KeyError: 'user' inside Django first, and the
        # SynchronousOnlyOperation while handling it: the last traceback is the one that names the mistake.
        log = log[log.rindex("Traceback (most recent call last)"):]
    problem = from_traceback(log, run.project)
    detail = str(problem) if problem else f"{type(outcome).__name__}: {outcome}"
    return Failed(detail, hint_for(problem.error if problem else log, default))


@check("alice's message is saved with her user: `python manage.py history ROOM` lists it")
def message_saved(run: Run) -> None:
    session, room = _sessions(run)["alice"], _room()
    outcome, log = run.websocket(lambda server, origin: _say(server, origin, session, room, ["keep me"]))
    if not isinstance(outcome, list):
        raise _failed_socket(outcome, log, run, "make the chat of step 09 work first")
    lines = _history(run, room)
    if not any(line.endswith("alice: keep me") for line in lines):
        raise Failed(f"the room's history holds {lines[-1] if lines else 'nothing'}",
                     "in receive_json, before group_send: await Message.objects.acreate(room=self.room_name, "
                     "user=self.scope['user'], text=message)")


async def _join_after(server, origin: str, sessions: dict, room: str, other: str) -> dict:
    """alice fills `room` with 22 messages and `other` with one; bob joins `room`. Return what bob heard first."""
    from websockets.asyncio.client import connect

    said = [f"message {n}" for n in range(HISTORY + 2)]
    await _say(server, origin, sessions["alice"], room, said)
    await _say(server, origin, sessions["alice"], other, ["in another room"])
    headers = {"Origin": origin, **cookie_header(sessions["bob"])}
    async with connect(server.ws_url(f"/ws/chat/{room}/"), additional_headers=headers, open_timeout=QUICK) as ws:
        # Whatever connect() sent comes before the echo of bob's own frame: no waiting for silence.
        await ws.send(json.dumps({"message": "bob is here"}))
        heard = []
        while True:
            frame = json.loads(await asyncio.wait_for(ws.recv(), QUICK))
            if frame == {"message": "bob is here", "user": "bob"}:
                return {"said": said, "heard": heard}
            heard.append(frame)


@check("whoever joins gets the room's last 20 messages first, oldest first, and no other room's")
def history_replayed(run: Run) -> None:
    sessions, room, other = _sessions(run), _room(), _room()
    outcome, log = run.websocket(lambda server, origin: _join_after(server, origin, sessions, room, other))
    if not isinstance(outcome, dict):
        raise _failed_socket(outcome, log, run, "in connect(), after accept(), send the room's newest messages")
    said, heard = outcome["said"], outcome["heard"]
    texts = [frame.get("message") for frame in heard]
    expected = [{"message": text, "user": "alice"} for text in said[-HISTORY:]]
    if heard == expected:
        return
    newest = "order_by('-created', '-id')[:20] picks the newest twenty; reversed(...) sends them oldest first"
    if not heard:
        raise Failed("bob joined after 22 messages and heard none of them",
                     "in connect(), after accept(): history = [m async for m in Message.objects.filter("
                     "room=self.room_name).select_related('user').order_by('-created', '-id')[:20]], then send_json "
                     "each, oldest first")
    if "in another room" in texts:
        raise Failed("bob heard a message from another room", "filter the history: Message.objects.filter("
                                                              "room=self.room_name)")
    if any(set(frame) != {"message", "user"} for frame in heard):
        raise Failed(f"a replayed frame is {heard[0]!r}",
                     "send each saved message in step 09's shape: {'message': m.text, 'user': m.user.username}")
    if len(heard) != HISTORY:
        raise Failed(f"bob heard {len(heard)} messages, not the last 20", newest)
    if texts == list(reversed(said[-HISTORY:])):
        raise Failed("bob heard the last 20 newest first", "send them oldest first: for m in reversed(history)")
    raise Failed(f"bob heard {texts[0]!r} … {texts[-1]!r}, not {said[-HISTORY]!r} … {said[-1]!r}", newest)
