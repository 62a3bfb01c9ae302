"""Turn a learner's broken project into one line: where it breaks (file, line) and the hint that fits."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from .registry import project_files

# (what the evidence says, the one hint that fits it); the first match wins, so specific ones come first.
HINTS: tuple[tuple[str, str], ...] = (
    (r"No application configured for scope type 'websocket'",
     "ProtocolTypeRouter in mychannels/asgi.py has no \"websocket\" entry: add "
     "'websocket': AuthMiddlewareStack(URLRouter(websocket_urlpatterns))"),
    (r"Django can only handle ASGI/HTTP connections",
     "mychannels/asgi.py serves Django's own ASGI app, which knows only HTTP: "
     "wrap get_asgi_application() in ProtocolTypeRouter({'http': ...})"),
    (r"No route found for path '([^']*)'",
     "no pattern in chat/routing.py's websocket_urlpatterns matches '\\1' "
     "(URLRouter patterns have no leading slash: r'ws/chat/$')"),
    (r"'await' outside async function",
     "await only works inside async def: make that method async def, as every handler of an async consumer is"),
    (r"object NoneType can't be used in 'await' expression|'NoneType' object can't be awaited",
     "a handler of an async consumer is a plain def, so it returns None and `await None` raises: "
     "make connect, disconnect, receive_json and chat_message async def"),
    (r"You cannot use AsyncToSync in the same thread as an async event loop",
     "an async consumer awaits the layer directly: write await self.channel_layer.group_send(...), "
     "not async_to_sync(...)(...)"),
    (r"coroutine '([\w.]+)' was never awaited",
     "\\1 was called without await, so it never ran: write await in front of it"),
    (r"can't be used in 'await' expression|takes \d+ positional arguments? but \d+ were given",
     "chat/routing.py routes the consumer class itself: route ChatConsumer.as_asgi()"),
    (r"No module named 'chat\.routing'",
     "chat/routing.py does not exist yet: create it with a websocket_urlpatterns list"),
    (r"No module named 'chat\.consumers'",
     "chat/consumers.py does not exist yet: create it and define ChatConsumer there"),
    (r"No module named 'chat'",
     "there is no chat app: run `python manage.py startapp chat` inside the workspace"),
    (r"No module named '(channels|daphne|django)'",
     "\\1 is not installed for this python: run the workbook through make or `python -m workbook`"),
    (r"cannot import name '(\w+)' from '([\w.]+)'",
     "\\2 does not define \\1: check the name's spelling where it is defined and where it is imported"),
    (r"AppRegistryNotReady|Apps aren't loaded yet",
     "mychannels/asgi.py imports chat code before Django is set up: call get_asgi_application() first"),
    (r"You have not set ASGI_APPLICATION",
     "settings.py has no ASGI_APPLICATION: set it to 'mychannels.asgi.application'"),
    (r"TemplateDoesNotExist",
     "Django cannot find index.html: put it in templates/ and add BASE_DIR / 'templates' to TEMPLATES' DIRS"),
    (r"unexpected keyword argument 'hosts'",
     "CONFIG's 'hosts' is for channels_redis: with REDIS_URL set, BACKEND must be "
     "'channels_redis.core.RedisChannelLayer'"),
    (r"'Settings' object has no attribute '(\w+)'",
     "mychannels/settings.py does not define \\1: add it in the workbook block at the end"),
    (r"NameError: name '(\w+)' is not defined",
     "\\1 is used but never defined or imported in that file: import it at the top"),
    (r"'NoneType' object has no attribute 'group_(add|send|discard)'",
     "self.channel_layer is None: set CHANNEL_LAYERS in mychannels/settings.py "
     "({'default': {'BACKEND': 'channels.layers.InMemoryChannelLayer'}})"),
    (r"No handler for message type ([\w.]+)",
     "group_send's 'type' \\1 names a consumer method with the dot made an underscore: define it, e.g. chat_message"),
    (r"KeyError: 'user'",
     "nothing put a user in the scope: wrap URLRouter(...) in AuthMiddlewareStack in mychannels/asgi.py"),
    (r"KeyError: 'message'",
     "receive() got JSON without a \"message\" key: send {\"message\": …}, or handle the missing key"),
    (r"JSONDecodeError|Expecting value",
     "receive() was given text that is not JSON: send JSON, or catch the error in receive()"),
    (r"SynchronousOnlyOperation|You cannot call this from an async context",
     "an async handler ran a synchronous ORM query: await Message.objects.acreate(...), iterate with "
     "`async for`, select_related('user') before reading message.user, or wrap the block in database_sync_to_async"),
    (r"no such table: chat_message",
     "the Message table does not exist: run `python manage.py makemigrations chat` (the runner then migrates)"),
)


def hint_for(evidence: str, default: str = "") -> str:
    """Return the one hint that fits the evidence (an error, a log excerpt), or `default`."""
    for pattern, hint in HINTS:
        match = re.search(pattern, evidence)
        if match:
            return match.expand(hint)
    return default


@dataclass(frozen=True)
class Problem:
    """Where the learner's code broke, and how."""

    file: str | None  # relative to the project
    line: int | None
    error: str  # e.g. "ModuleNotFoundError: No module named 'chat.routing'"

    def __str__(self) -> str:
        where = f"{self.file}, line {self.line}: " if self.file else ""
        return f"{where}{self.error}"


def syntax_errors(project: Path) -> list[Problem]:
    """Compile every .py file of the project; return one Problem per file that does not compile."""
    problems = []
    for name in project_files(project):
        if not name.endswith(".py"):
            continue
        source = (project / name).read_bytes()
        try:
            compile(source, name, "exec", dont_inherit=True)
        except SyntaxError as error:
            kind = type(error).__name__
            problems.append(Problem(name, error.lineno, f"{kind}: {error.msg}"))
        except ValueError as error:  # e.g. a NUL byte in the file
            problems.append(Problem(name, None, f"{type(error).__name__}: {error}"))
    return problems


_FRAME = re.compile(r'^\s*File "([^"]+)", line (\d+)', re.MULTILINE)
_EXCEPTION = re.compile(r"^([A-Za-z_][\w.]*(?:Error|Exception|Exit|NotReady|Interrupt|Configured|Operation)\b.*)$",
                        re.MULTILINE)


def from_traceback(text: str, project: Path) -> Problem | None:
    """Find the first traceback in `text`: its root exception and the deepest frame in the project's files."""
    if "Traceback (most recent call last)" not in text:
        return None
    root = project.resolve()
    # Chained tracebacks print the cause first: it names the learner's mistake, the rest is Django reacting.
    first = text[text.index("Traceback (most recent call last)"):]
    blocks = re.split(r"\n\s*\nThe above exception was the direct cause|\n\s*\nDuring handling of the above", first)
    block = blocks[0]
    exceptions = _EXCEPTION.findall(block)
    error = exceptions[-1].strip() if exceptions else block.strip().splitlines()[-1].strip()
    where: tuple[str, int] | None = None
    for path, line in _FRAME.findall(block):
        try:
            relative = Path(path).resolve().relative_to(root)
        except (ValueError, OSError):
            continue
        where = (relative.as_posix(), int(line))
    return Problem(where[0] if where else None, where[1] if where else None, error)
