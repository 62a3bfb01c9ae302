"""The checks of step 9: Django's login, demo users, and a consumer that takes its user from the session."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request

from ..demo_users import COMMAND as DEMO_USERS_COMMAND
from ..demo_users import run_demo_users
from ..doctor.hints import from_traceback, hint_for
from ..errors import WorkbookError
from ..login import LOGIN_PATH, cookie_header, login
from ..state import TIMEOUT
from .check_base import QUICK, RUNSERVER, Failed, Run, check

ALICE = ("alice", "alice-password")
COMMAND = DEMO_USERS_COMMAND.as_posix()


@check("/accounts/login/ shows Django's login form")
def login_page(run: Run) -> None:
    url = run.server().http_url.rstrip("/") + LOGIN_PATH
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT) as response:
            body = response.read().decode("utf-8", errors="replace")
    except urllib.error.HTTPError as error:
        body = error.read().decode("utf-8", errors="replace")
        if "registration/login.html" in body:
            raise Failed(f"HTTP {error.code}: TemplateDoesNotExist registration/login.html",
                         "LoginView renders templates/registration/login.html: create it, with a POST form, "
                         "{% csrf_token %} and {{ form.as_p }}") from None
        raise Failed(f"HTTP {error.code}", "add path('accounts/', include('django.contrib.auth.urls')) "
                                           "to mychannels/urls.py") from None
    if "csrfmiddlewaretoken" not in body or 'name="password"' not in body:
        raise Failed("the page has no login form with a CSRF token",
                     "in templates/registration/login.html: <form method=\"post\"> with {% csrf_token %} and "
                     "{{ form.as_p }}")


@check("`python manage.py demo_users` creates alice and bob", served=RUNSERVER)
def demo_users(run: Run) -> None:
    server = run.server()  # serving migrated the database the command writes to
    if not (run.project / COMMAND).is_file():
        raise Failed(f"{COMMAND} does not exist",
                     f"copy {COMMAND} and the two empty __init__.py files beside it from steps/09-users")
    done = run_demo_users(run.project, server.command()[0])  # always run: the check is that their command works
    if done.returncode != 0:
        problem = from_traceback(done.stderr, run.project)
        last = (done.stderr.strip().splitlines() or ["it printed nothing"])[-1]
        raise Failed(str(problem) if problem else last, hint_for(done.stderr, f"run it yourself: {last}"))


async def _anonymous(server, origin: str) -> int:
    from ..client import handshake_status

    return await handshake_status(server.ws_url(), origin=origin, quiet=True)


@check("a handshake without a logged-in user is refused (HTTP 403)")
def anonymous_refused(run: Run) -> None:
    status, log = run.websocket(_anonymous)
    if status == 403:
        return
    if "KeyError: 'user'" in log:
        raise Failed("the consumer raised KeyError: 'user'",
                     "nothing puts a user in the scope: keep AuthMiddlewareStack(URLRouter(...)) in mychannels/asgi.py")
    if status == 101:
        raise Failed("an anonymous client was let in (HTTP 101)",
                     "in connect(), before accept(): if not self.scope['user'].is_authenticated, "
                     "`await self.close()` and return")
    problem = from_traceback(log, run.project)
    raise Failed(f"the handshake got {status}" + (f": {problem}" if problem else ""), hint_for(log))


async def _speak_as(server, origin: str, session: str) -> object:
    from websockets.asyncio.client import connect

    headers = {"Origin": origin, **cookie_header(session)}
    async with connect(server.ws_url("/ws/chat/check-users/"), additional_headers=headers, open_timeout=QUICK) as ws:
        await ws.send(json.dumps({"message": "hello", "user": "mallory"}))
        return json.loads(await asyncio.wait_for(ws.recv(), QUICK))


@check("alice's message reaches her room as {\"message\": ..., \"user\": \"alice\"}, whatever the frame claims")
def sender_from_session(run: Run) -> None:
    server = run.server()
    try:
        session = login(server.http_url, *ALICE)
    except WorkbookError as problem:
        raise Failed(str(problem), "create the demo users first: `python -m workbook users workspace`") from None
    reply, log = run.websocket(lambda server, origin: _speak_as(server, origin, session))
    if reply == {"message": "hello", "user": "alice"}:
        return
    if isinstance(reply, dict) and reply.get("user") == "mallory":
        raise Failed("the frame said \"user\": \"mallory\" and the room believed it",
                     "take the name from self.scope['user'].username, never from the client's frame")
    if isinstance(reply, dict) and "user" not in reply:
        raise Failed(f"got {reply!r}: no sender", "put 'user': self.scope['user'].username in the group_send event, "
                                                  "and send event['user'] on in chat_message")
    problem = from_traceback(log, run.project)
    raise Failed(str(problem) if problem else f"got {reply!r}", hint_for(log, "make the chat of step 08 work first"))
