"""Each step's behaviour checks: functions over a project directory, run alike on a snapshot and a workspace.

`run_checks(step, directory)` compiles the code, loads the project, starts a real server from it (runserver,
as `make run` does), drives the consumer in-process, and returns one Result per check, each failure with
the one hint that fits what went wrong.

It stays one module of about 270 lines on purpose: the checks of the article's five stages, the gates and the
table that orders every step's checks read top to bottom as the stages themselves; the later steps' checks live in
checks_*.py beside it.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from pathlib import Path

from ..doctor.hints import from_traceback, hint_for, syntax_errors
from ..errors import WorkbookError
from ..registry import Step
from ..servers.server import Server
from .check_base import AGAIN, HELLO, IN_PROCESS, QUICK, RUNSERVER, CheckFunc, Failed, Result, Run, Unavailable, check
from .checks_async import awaits_and_never_blocks, consumer_is_async_json
from .checks_groups import redis_shares_rooms, room_route, rooms_share_messages
from .checks_history import history_replayed, message_model, message_saved
from .checks_tests import browser_test_runs, catches_drops_user, catches_leaky_rooms, catches_no_history, tests_pass
from .checks_users import anonymous_refused, demo_users, login_page, sender_from_session

__all__ = ["Result", "checks_for", "redis_shares_rooms", "run_checks"]


# --- gates: every step runs these first ---------------------------------------------------------------
@check("every .py file compiles", served=IN_PROCESS)
def compiles(run: Run) -> None:
    problems = syntax_errors(run.project)
    if problems:
        first = problems[0]
        usual = f"open {first.file} at line {first.line}: a missing colon, bracket or quote is the usual cause"
        raise Failed("; ".join(map(str, problems)), hint_for(first.error, usual))


@check("Django loads the settings and the ASGI application", served=IN_PROCESS)
def loads(run: Run) -> None:
    run.warm_up()
    run.facts()


@check("the server starts (manage.py runserver)")
def starts(run: Run) -> None:
    run.server()


@check("/ answers 200 with the page")
def page_answers(run: Run) -> None:
    status, body = run.page()
    no_route = "mychannels/urls.py has no route for '': add path('', TemplateView.as_view(template_name='index.html'))"
    if status != 200:
        if "TemplateDoesNotExist" in body:
            raise Failed(f"HTTP {status}: TemplateDoesNotExist", hint_for("TemplateDoesNotExist"))
        raise Failed(f"HTTP {status}", no_route)
    if "The install worked successfully" in body:
        raise Failed("/ shows Django's rocket page: nothing is routed there yet", no_route)


# --- step 1 -------------------------------------------------------------------------------------------
@check("runserver is daphne's ASGI server", served=RUNSERVER)
def runserver_is_daphne(run: Run) -> None:
    server = run.server()
    try:
        server.wait_for_log(r"Starting ASGI/Daphne", timeout=QUICK)
    except WorkbookError:
        apps = run.facts()["installed_apps"]
        hint = ("add 'daphne' at the top of INSTALLED_APPS in mychannels/settings.py" if "daphne" not in apps
                else "move 'daphne' to the very top of INSTALLED_APPS: the first app's runserver wins")
        raise Failed("the banner says 'Starting development server', Django's WSGI one", hint) from None


async def _handshake(server: Server, origin: str) -> int:
    from ..client import handshake_status

    return await handshake_status(server.ws_url(), origin=origin, quiet=True)


@check("ProtocolTypeRouter receives a websocket, and refuses it: it knows only http")
def router_knows_only_http(run: Run) -> None:
    status, log = run.websocket(_handshake)
    if status == 101 or "No application configured for scope type 'websocket'" in log:
        return  # 101: the router already routes websockets, which step 4 teaches; nothing is wrong
    if status == 404:
        raise Failed("HTTP 404: Django's WSGI runserver answered",
                     "put 'daphne' at the top of INSTALLED_APPS, so runserver speaks ASGI")
    problem = from_traceback(log, run.project)
    raise Failed(f"the handshake got {status}" + (f": {problem}" if problem else ""),
                 hint_for(log, "make application in mychannels/asgi.py a ProtocolTypeRouter({'http': ...})"))


# --- steps 2 and 3: the consumer, in-process ----------------------------------------------------------
@check("'chat' is in INSTALLED_APPS", served=IN_PROCESS)
def chat_installed(run: Run) -> None:
    if "chat" not in run.facts()["installed_apps"]:
        create = "" if (run.project / "chat").is_dir() else "run `python manage.py startapp chat`, then "
        raise Failed("INSTALLED_APPS has no 'chat'", f"{create}add 'chat' to INSTALLED_APPS in mychannels/settings.py")


@check("ChatConsumer accepts a connection (in-process)", served=IN_PROCESS)
def consumer_accepts(run: Run) -> None:
    report = run.drive()
    if not report["connected"]:
        raise Failed("the handshake was not accepted", "call self.accept() in ChatConsumer.connect")


@check('ChatConsumer echoes {"message": ...} back (in-process)', served=IN_PROCESS)
def consumer_echoes(run: Run) -> None:
    report = run.drive()
    send_back = "in receive(), send it back: self.send(text_data=json.dumps({'message': message}))"
    if report["error"]:
        hint = send_back if "Timeout" in report["error"] else hint_for(report["error"], send_back)
        raise Failed(report["error"], hint)
    replies = report["replies"]
    if [_json(r) for r in replies] != [{"message": "hello"}, {"message": "again"}]:
        raise Failed(f"sent {HELLO} and {AGAIN}, got {replies!r}", send_back)


@check("connect and disconnect each print a line", served=IN_PROCESS)
def consumer_prints_events(run: Run) -> None:
    lines = [line for line in run.drive()["printed"].splitlines() if line.strip()]
    if len(lines) < 2:
        raise Failed(f"printed {len(lines)} line(s)", "print() a line in connect() and another in disconnect()")


@check("connect prints the scope: its type, path and headers", served=IN_PROCESS)
def scope_printed(run: Run) -> None:
    printed = run.drive()["printed"]
    if not all(key in printed for key in ("'type': 'websocket'", "'path': '/ws/chat/'", "'headers'")):
        raise Failed("the printed output holds no scope", "pprint(self.scope) in ChatConsumer.connect")


# --- steps 4 and 5: over the wire ---------------------------------------------------------------------
@check("a websocket to /ws/chat/ is accepted (HTTP 101)")
def handshake_accepted(run: Run) -> None:
    status, log = run.websocket(_handshake)
    if status == 101:
        return
    default = {403: "an origin validator refused this host: check ALLOWED_HOSTS",
               404: "runserver is not daphne's: put 'daphne' at the top of INSTALLED_APPS"}.get(status, "")
    problem = from_traceback(log, run.project)
    raise Failed(f"the handshake got {status}" + (f": {problem}" if problem else ""), hint_for(log, default))


async def _echo(server: Server, origin: str):
    from ..client import echo

    return await echo(server.ws_url(), "hello, channels", origin=origin, quiet=True)


@check("a real client gets its message echoed")
def echo_over_the_wire(run: Run) -> None:
    reply, log = run.websocket(_echo)
    if reply == {"message": "hello, channels"}:
        return
    problem = from_traceback(log, run.project)
    if problem:
        raise Failed(str(problem), hint_for(problem.error, f"open {problem.file} at line {problem.line}"))
    if isinstance(reply, (TimeoutError, asyncio.TimeoutError)):
        raise Failed("no reply", "in receive(), send it back: self.send(text_data=json.dumps({'message': message}))")
    raise Failed(f"got {reply!r}", hint_for(log + str(reply), "send back {'message': <the text received>} as JSON"))


@check("the scope holds what AuthMiddlewareStack and URLRouter add")
def scope_has_middleware(run: Run) -> None:
    reply, log = run.websocket(_echo)
    if reply != {"message": "hello, channels"} and "'type': 'websocket'" not in log:
        raise Failed("no connection reached the consumer", hint_for(log, "make the echo above work first"))
    if "'type': 'websocket'" not in log:
        raise Failed("connect printed no scope", "keep step 3's pprint(self.scope) in ChatConsumer.connect")
    if "'path': '/ws/chat/'" not in log:
        raise Failed("the printed scope has no 'path': '/ws/chat/'", "keep step 3's pprint(self.scope) in connect")
    missing = [key for key in ("'cookies'", "'session'", "'user'", "'url_route'", "'path_remaining'")
               if key not in log]
    if missing:
        routed = {"'url_route'", "'path_remaining'"}
        hint = ("route through URLRouter(websocket_urlpatterns)" if set(missing) <= routed
                else "wrap URLRouter(...) in AuthMiddlewareStack in mychannels/asgi.py")
        raise Failed(f"the scope has no {', '.join(missing)}", hint)
    if "'url_route': {'args': (), 'kwargs': {}}" not in log:
        raise Failed("/ws/chat/ is routed with arguments",
                     "route it without groups: re_path(r'ws/chat/$', consumers.ChatConsumer.as_asgi())")


# --- step 5: the page's JavaScript --------------------------------------------------------------------
def _page_has(run: Run, patterns: list[str], detail: str, hint: str) -> None:
    _, body = run.page()
    # Only code the page runs counts: a snippet shown in <pre> for the console does not.
    scripts = "\n".join(re.findall(r"<script\b[^>]*>(.*?)</script>", body, re.DOTALL | re.IGNORECASE))
    if not all(re.search(p, scripts) for p in patterns):
        raise Failed(detail, hint)


@check("the page opens a WebSocket to /ws/chat/ on its own host")
def page_opens_socket(run: Run) -> None:
    _page_has(run, [r"new WebSocket\(", r"location\.host", r"/ws/chat/"],
              "no <script> runs new WebSocket(… location.host … /ws/chat/)",
              "in a <script> in templates/index.html: new WebSocket('ws://' + location.host + '/ws/chat/')")


@check("the page uses wss:// when it is served over https")
def page_picks_scheme(run: Run) -> None:
    _page_has(run, [r"location\.protocol", r"wss://"], "the ws:// scheme is fixed",
              "pick 'wss://' when location.protocol is 'https:', else 'ws://'")


@check("the page sends JSON and shows the replies")
def page_talks_json(run: Run) -> None:
    _page_has(run, [r"JSON\.stringify", r"onmessage"], "no JSON.stringify send, or no onmessage handler",
              "send JSON.stringify({message: text}); show JSON.parse(e.data).message in chatSocket.onmessage")


def _json(text):
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return text


GATES: tuple[CheckFunc, ...] = (compiles, loads, starts)
STEP_CHECKS: dict[int, tuple[CheckFunc, ...]] = {
    # No check for 'channels' in INSTALLED_APPS: in Channels 4 that app only adds `runworker`, so it is optional.
    1: (runserver_is_daphne, page_answers, router_knows_only_http),
    2: (page_answers, chat_installed, consumer_accepts, consumer_echoes, consumer_prints_events),
    3: (page_answers, consumer_accepts, consumer_echoes, scope_printed),
    4: (page_answers, handshake_accepted, echo_over_the_wire, scope_has_middleware),
    5: (page_answers, handshake_accepted, echo_over_the_wire, page_opens_socket, page_picks_scheme, page_talks_json),
    6: (page_answers, handshake_accepted, room_route, rooms_share_messages),
    7: (page_answers, handshake_accepted, room_route, rooms_share_messages, redis_shares_rooms),
    8: (page_answers, handshake_accepted, consumer_is_async_json, awaits_and_never_blocks, room_route,
        rooms_share_messages, redis_shares_rooms),
    9: (page_answers, login_page, demo_users, anonymous_refused, sender_from_session),
    10: (page_answers, awaits_and_never_blocks, message_model, anonymous_refused, message_saved, history_replayed),
    11: (page_answers, tests_pass, browser_test_runs, catches_drops_user, catches_leaky_rooms, catches_no_history),
}


def checks_for(step: Step) -> tuple[CheckFunc, ...]:
    """Return the gates, then the checks of `step` (the page alone for a step without its own checks yet)."""
    return GATES + STEP_CHECKS.get(step.number, (page_answers,))


def run_checks(step: Step, project: Path, report: Callable[[Result], None] | None = None) -> list[Result]:
    """Run step's checks against a project directory; call `report` with each Result as it comes."""
    run = Run(Path(project), label=f"{Path(project).name}-check")
    results: list[Result] = []
    blocked = False
    try:
        for func in checks_for(step):
            if blocked:
                result = Result(func.check_name, "skip")
            else:
                try:
                    func(run)
                    result = Result(func.check_name, "pass")
                except Failed as failure:
                    result = Result(func.check_name, "fail", failure.detail, failure.hint)
                    blocked = func in GATES
                except Unavailable as why:
                    result = Result(func.check_name, "skip", str(why))
                except Exception as error:  # the project broke in a way no check foresaw: say so, go on
                    result = Result(func.check_name, "fail", f"{type(error).__name__}: {error}",
                                    hint_for(str(error), "read the server output: `make workspace run` shows it"))
            results.append(result)
            if report:
                report(result)
    finally:
        run.close()
    return results
