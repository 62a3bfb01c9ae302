"""`make room`: one server for the whole class: final/ (or a step from 7 on) on Redis, on the LAN, with logins.

The room starts a throwaway Redis (or uses REDIS_URL), creates the class's users when the project has Django's
login, then hands over to `python -m workbook run TARGET --host 0.0.0.0` (the same admission of this machine's
addresses, log and Ctrl-C) and, once that is up, prints what to give out: the page, the websocket, the login and
a one-line Python client (`python -m workbook chat`).
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

from ..errors import WorkbookError
from ..registry import ROOT

ROOM = "class"
LEARNERS = 30
# Run inside the project by `manage.py shell -c`: the names and the password come in the environment.
# The password is hashed once for all (a hash takes a good fraction of a second, by design).
CREATE_USERS = """
import os
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
User = get_user_model()
hashed = make_password(os.environ['WORKBOOK_ROOM_PASSWORD'])
for name in os.environ['WORKBOOK_ROOM_USERS'].split(','):
    User.objects.update_or_create(username=name, defaults={'password': hashed})
"""


def has_login(project: Path) -> bool:
    """Tell whether the project logs users in with Django's views (step 9 on): its sockets then need a session."""
    return (project / "templates" / "registration" / "login.html").is_file()


def create_users(project: Path, names: list[str], password: str) -> None:
    """Migrate the project's database if needed, then create (or reset) each user with the room's password."""
    from ..servers.migrate import migrate_if_needed
    from ..servers.server import Server

    server = Server(project, label=f"{project.name}-room-users", port=1)  # never started: it names the interpreter
    migrate_if_needed(server)
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "WORKBOOK_ROOM_USERS": ",".join(names),
           "WORKBOOK_ROOM_PASSWORD": password}
    done = subprocess.run([server.command()[0], "manage.py", "shell", "-c", CREATE_USERS], cwd=project, env=env,
                          capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        last = ((done.stderr or done.stdout).strip().splitlines() or ["it printed nothing"])[-1]
        raise WorkbookError(f"creating the room's users in {project.name} failed: {last}")


def handout(addresses: list[str], port: int, room: str, login: tuple[list[str], str] | None) -> list[str]:
    """Say what to give out: for each address the page and the websocket; the login; the one-line client."""
    from .lan import host_header

    if not addresses:
        return ["workbook: this machine has no network address besides loopback: join the room's network, "
                "then run `make room` again"]
    lines = ["workbook: the room is open. Give out:"]
    for address in addresses:
        site = f"{host_header(address)}:{port}"
        lines += [f"  page       http://{site}/?room={room}", f"  websocket  ws://{site}/ws/chat/{room}/"]
    first = f"{host_header(addresses[0])}:{port}"
    client = f"python -m workbook chat ws://{first}/ws/chat/{room}/"
    if login:
        names, password = login
        lines.append(f"  log in     http://{first}/accounts/login/ as {names[0]} … {names[-1]}, "
                     f"password {password}")
        client += f" --login {names[0]}:{password}"
    lines.append(f"  Python     {client}")
    if login:
        lines.append("  (one login per person: learner1, learner2, …; the page and the client show who wrote what)")
    return lines


def start_redis(project: Path):
    """Use REDIS_URL when it is set and answers; otherwise start a throwaway redis-server for the room."""
    from ..servers.redis import RedisServer, check_redis_url

    url = os.environ.get("REDIS_URL", "")
    if url:
        check_redis_url(project, url)
        return None, url
    redis = RedisServer().start()
    return redis, redis.url


def cmd_room(args) -> int:
    from ..registry import get_step
    from ..servers.listen import given, read_port
    from ..servers.redis import uses_redis_url
    from .lan import hosts_to_admit

    began = time.monotonic()
    step = get_step(args.target)
    if not uses_redis_url(step.path):
        raise WorkbookError(f"{step.label} keeps its groups in one process: the room needs Redis, so run final "
                            "or a step from 7 on (make room, or python -m workbook room 9)")
    port = read_port(given("PORT", args.port))
    redis, url = start_redis(step.path)
    child = None
    # A plain `kill` closes the room as cleanly as Ctrl-C: the runner, then Redis.
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        login = None
        if has_login(step.path):
            names = [f"learner{i}" for i in range(1, args.learners + 1)]
            login = (names, args.password or secrets.token_urlsafe(6))
            create_users(step.path, *login)
        target = "final" if step.id == "final" else str(step.number)
        env = {**os.environ, "REDIS_URL": url, "PYTHONUNBUFFERED": "1"}
        env.pop("HOST", None)
        cmd = [sys.executable, "-m", "workbook", "run", target, "--host", args.host, "--port", str(port),
               "--no-reload"]
        child = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                 stdin=subprocess.DEVNULL, text=True, errors="replace")
        for line in child.stdout:
            print(line, end="", flush=True)
            if " is up on http" in line:
                addresses = hosts_to_admit(args.host)[0]
                print(*handout(addresses, port, args.room, login), sep="\n", flush=True)
                print(f"workbook: the room was ready {time.monotonic() - began:.1f} s after `room` started, "
                      f"on Redis at {url}. Ctrl-C closes it.", flush=True)
        return child.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        if child is not None and child.poll() is None:
            child.terminate()  # the runner stops its server on SIGTERM as on Ctrl-C
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()
        if redis is not None:
            redis.stop()


def add_commands(sub) -> None:
    """Add `room`: final/ on Redis for the whole class, and what to give out."""
    room = sub.add_parser("room", help="serve final/ on Redis to the whole room (LAN) and print what to give out")
    room.add_argument("target", nargs="?", default="final", help="final (default) or a step from 7 on")
    room.add_argument("--host", default="0.0.0.0", help="where to listen (default 0.0.0.0: every address)")
    room.add_argument("--port", help="the port (default: $PORT, else 8000)")
    room.add_argument("--room", default=ROOM, help=f"the chat room to give out (default {ROOM})")
    room.add_argument("--learners", type=int, default=LEARNERS, help="how many logins to create, when the "
                      f"project has Django's login (default {LEARNERS}: learner1 …)")
    room.add_argument("--password", help="the learners' shared password (default: a new random one)")
    room.set_defaults(func=cmd_room)
