"""The doctor's rules on a project's loaded facts and its text; routing.py and pages.py hold the rest."""

from __future__ import annotations

import ast
import re
import socket
from dataclasses import dataclass
from pathlib import Path

from .. import catalogue
from ..registry import project_files


@dataclass(frozen=True)
class Finding:
    """One thing the doctor found; its fix comes from the failure catalogue (pitfalls/pitfalls.toml) by slug."""

    slug: str
    problem: bool  # False: a warning, worth knowing but not an error
    what: str
    fix: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "fix", self.fix or catalogue.fix(self.slug))

    def render(self) -> str:
        kind = "problem" if self.problem else "warning"
        return f"{kind} [{self.slug}] {self.what}\n    fix: {self.fix} ({catalogue.PAGE}#{self.slug})"


def files_ending(project: Path, suffixes: tuple[str, ...]):
    return [project / name for name in project_files(project) if name.endswith(suffixes)]


# --- the checks ---------------------------------------------------------------------------------------
def load_findings(found: dict) -> list[Finding]:
    """Name what failed when loading the project the daphne way, and whether the runserver way worked."""
    daphne, runserver = found["daphne"]["import_error"], found.get("runserver", {}).get("import_error")
    if not daphne:
        return []
    error = f"{daphne['type'].rpartition('.')[2]}: {daphne['message']}"
    where = f" ({daphne['where']})" if daphne["where"] else ""
    if not runserver:
        return [Finding(
            "routing-before-setup", True,
            f"the daphne CLI cannot load asgi.py ({error}{where}), though runserver can: "
            "asgi.py imports code that needs Django before get_asgi_application() has run",
        )]
    return [Finding(
        "project-does-not-load", True, f"the project does not load: {error}{where}",
    )]


def settings_findings(facts: dict, pages: dict) -> list[Finding]:
    """Check INSTALLED_APPS, ASGI_APPLICATION, the system checks and the channel layer."""
    out = []
    settings = facts["settings"]
    apps = settings["INSTALLED_APPS"]
    uses_channels = "channels" in apps or "websocket" in (facts["protocols"] or []) or pages["paths"]
    if "daphne" not in apps and uses_channels:
        out.append(Finding(
            "no-daphne-app", True,
            "'daphne' is not in INSTALLED_APPS: runserver stays Django's WSGI server "
            "(\"Starting development server\") and answers websockets with 404",
        ))
    if "daphne" in apps and not settings["ASGI_APPLICATION"]:
        out.append(Finding(
            "no-asgi-application", True, "ASGI_APPLICATION is not set: daphne's runserver cannot start",
        ))
    for check in facts["checks"]:
        if not check["serious"]:
            continue
        if check["id"] == "daphne.E001":
            out.append(Finding("daphne-after-staticfiles", True, f"system check daphne.E001: {check['msg']}"))
        else:
            out.append(Finding("system-check", True, f"system check {check['id']}: {check['msg']}"))
    layers = settings["CHANNEL_LAYERS"]
    if any(backend and backend.endswith("InMemoryChannelLayer") for backend in layers.values()):
        out.append(Finding(
            "inmemory-layer-two-processes", False,
            "CHANNEL_LAYERS uses InMemoryChannelLayer: groups only reach sockets in the same server process "
            "(fine for one runserver)",
        ))
    for host, port in settings.get("REDIS_HOSTS", []):
        try:
            socket.create_connection((host, port), timeout=2).close()
        except OSError:
            out.append(Finding(
                "redis-unreachable", True,
                f"CHANNEL_LAYERS uses Redis at {host}:{port}, but nothing answers there: every group call fails",
            ))
    return out


def database_findings(facts: dict) -> list[Finding]:
    """Check that a project which reads sessions has a migrated database to read them from."""
    database, settings = facts.get("database") or {}, facts["settings"]
    stack = "SessionMiddleware" in facts.get("middleware", [])  # on the websocket: every handshake may read one
    in_db = settings.get("SESSION_ENGINE", "").endswith(("backends.db", "backends.cached_db"))
    if not in_db or not (stack or "django.contrib.sessions" in settings["INSTALLED_APPS"]) or "error" in database:
        return []
    middleware = facts.get("middleware", [])
    reader = ("AuthMiddlewareStack reads" if "AuthMiddleware" in middleware else "SessionMiddleware reads" if stack
              else "Django's sessions (the admin's login) read")
    name, unapplied = database.get("name", "the database"), database.get("unapplied") or 0
    if not database.get("exists", True):
        return [Finding(
            "no-session-table", False,
            f"{name} does not exist yet and {reader} sessions from it: served by hand before `migrate`, "
            "a request that carries a sessionid cookie gets HTTP 500 (\"no such table: django_session\")",
        )]
    if database.get("session_table") is False:
        return [Finding(
            "no-session-table", True,
            f"{name} has no django_session table ({unapplied} unapplied migration(s)) and {reader} sessions from "
            "it: a handshake that carries a sessionid cookie gets HTTP 500 (\"no such table: django_session\")",
        )]
    if unapplied:
        return [Finding("unapplied-migrations", False,
                        f"{name} lacks {unapplied} migration(s): code that uses those models fails")]
    return []


def async_findings(project: Path) -> list[Finding]:
    """Name coroutines called without await, and blocking calls or sync queries in async handlers, from the text."""
    from .async_lint import scan

    out = []
    for mistake in scan(project):
        if mistake.kind == "unawaited":
            out.append(Finding(
                "forgot-await", True,
                f"{mistake}: that only builds a coroutine, which never runs (the room never hears the message)",
            ))
        elif mistake.kind == "sync-orm":
            out.append(Finding(
                "sync-orm-in-async", True, f"{mistake}: the handler raises, and the socket closes with 1011",
            ))
        else:
            out.append(Finding(
                "blocking-sleep", True,
                f"{mistake}: every connection of the server process waits while it runs",
            ))
    return out


def text_findings(project: Path, module: str) -> list[Finding]:
    """Check settings.py and asgi.py as text, for a project that does not load."""
    out = []
    package = project / module.rpartition(".")[0].replace(".", "/")
    settings_file = project / (module.replace(".", "/") + ".py")
    try:
        tree = ast.parse(settings_file.read_text(encoding="utf-8"))
        apps = next(
            ast.literal_eval(node.value) for node in tree.body
            if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "INSTALLED_APPS" for t in node.targets)
        )
    except (OSError, SyntaxError, ValueError, StopIteration):
        apps = None
    if apps is not None and "daphne" not in apps:
        out.append(Finding("no-daphne-app", True, "INSTALLED_APPS has no 'daphne' (read from settings.py)"))
    elif apps and "django.contrib.staticfiles" in apps and apps.index("daphne") > apps.index(
            "django.contrib.staticfiles"):
        out.append(Finding("daphne-after-staticfiles", True, "'daphne' comes after staticfiles (from the text)"))
    asgi = package / "asgi.py"
    text = asgi.read_text(encoding="utf-8") if asgi.exists() else ""
    routing_at = re.search(r"^from (?!channels\.)[\w.]*routing import", text, re.MULTILINE)
    setup_at = re.search(r"get_asgi_application\(\)", text)
    if routing_at and setup_at and routing_at.start() < setup_at.start():
        out.append(Finding("routing-before-setup", True, "asgi.py imports routing before get_asgi_application()"))
    if text and "ProtocolTypeRouter" in text and not re.search(r"['\"]websocket['\"]\s*:", text):
        out.append(Finding("no-websocket-route", True, "asgi.py's ProtocolTypeRouter has no 'websocket' key"))
    for routing in files_ending(project, ("routing.py",)):
        for line in routing.read_text(encoding="utf-8").splitlines():
            if re.search(r"(re_)?path\(.*\b\w*Consumer\s*\)", line) and ".as_asgi(" not in line:
                out.append(Finding("no-as-asgi", True, f"{routing.relative_to(project)}: {line.strip()}"))
    return out


