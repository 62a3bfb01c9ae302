"""The doctor's rules: what a project's loaded facts, its pages' scripts and its text say is wrong."""

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


# --- the project's text ----------------------------------------------------------------------------------
def _files(project: Path, suffixes: tuple[str, ...]):
    return [project / name for name in project_files(project) if name.endswith(suffixes)]


def page_scripts(project: Path) -> dict[str, str]:
    """Return the JavaScript of the project's pages: <script> blocks of templates, and .js files."""
    scripts = {}
    for path in _files(project, (".html", ".js")):
        text = path.read_text(encoding="utf-8", errors="replace")
        if path.suffix == ".html":
            text = "\n".join(re.findall(r"<script\b[^>]*>(.*?)</script>", text, re.DOTALL | re.IGNORECASE))
        if "WebSocket" in text:
            scripts[path.relative_to(project).as_posix()] = text
    return scripts


def socket_facts(scripts: dict[str, str]) -> dict:
    """Read what the pages do with their sockets: the paths they open, what they send, which schemes."""
    facts = {"paths": set(), "plain_sends": [], "sent_keys": [], "insecure_only": []}
    for name, js in scripts.items():
        for arg in re.findall(r"new\s+WebSocket\s*\(([^;]*?)\)\s*;", js):
            # The first literal path is what the routing must match; later pieces are dynamic (a room name).
            facts["paths"] |= set(re.findall(r"['\"`](/[^'\"`$]*)['\"`]", arg)[:1])
        for var in set(re.findall(r"(\w+)\s*=\s*new\s+WebSocket\b", js)):
            for arg in re.findall(rf"\b{var}\.send\(\s*(.*?)\);", js):
                if not arg.startswith("JSON.stringify"):
                    facts["plain_sends"].append(f"{name}: {var}.send({arg})")
                obj = re.match(r"JSON\.stringify\(\s*\{(.*)\}\s*\)$", arg)
                if obj:
                    facts["sent_keys"].append((name, set(re.findall(r"['\"]?(\w+)['\"]?\s*:", obj.group(1)))))
        if re.search(r"['\"`]ws://", js) and "wss" not in js:
            facts["insecure_only"].append(name)
    return facts


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


_ROUTES = re.compile(r"^websocket_urlpatterns\s*[:=]", re.MULTILINE)
_CONSUMER = re.compile(r"^class\s+(\w+)\s*\([^)]*\b\w*(?:Consumer)\b", re.MULTILINE)


def websocket_code(project: Path) -> dict[str, list[str]]:
    """Find websocket code in the project's text: modules defining websocket_urlpatterns, and consumer classes."""
    code: dict[str, list[str]] = {"routes": [], "consumers": []}
    for path in _files(project, (".py",)):
        text = path.read_text(encoding="utf-8", errors="replace")
        name = path.relative_to(project).as_posix()
        if _ROUTES.search(text):
            code["routes"].append(name)
        code["consumers"] += [f"{cls} ({name})" for cls in _CONSUMER.findall(text)]
    return code


def routing_findings(facts: dict, pages: dict, code: dict | None = None) -> list[Finding]:
    """Check the ASGI application: websocket entry, origin validator, routes, consumers, the pages' paths."""
    out = []
    protocols = facts["protocols"]
    code = code or {"routes": [], "consumers": []}
    if protocols is not None and "websocket" not in protocols:
        # Routes that nothing serves are a mistake; a consumer alone is steps 2-3, tested in-process before routing.
        users = []
        if pages["paths"]:
            users.append("the pages open " + ", ".join(sorted(pages["paths"])))
        if code["routes"]:
            users.append(f"{', '.join(code['routes'])} defines websocket_urlpatterns")
        consumers = ", ".join(code["consumers"])
        if users:
            why = "; ".join(users) + ", but nothing serves them"
        elif consumers:
            why = f"{consumers} exists but nothing routes to it yet: fine while you test it in-process"
        else:
            why = "fine until this project uses websockets"
        out.append(Finding(
            "no-websocket-route", bool(users),
            "ProtocolTypeRouter has no 'websocket' entry: every handshake gets HTTP 500 "
            f"(\"No application configured for scope type 'websocket'\"); {why}",
        ))
    if protocols is None and pages["paths"]:
        out.append(Finding(
            "django-asgi-only", True,
            f"the ASGI application is a {facts.get('app_type')}, not a channels ProtocolTypeRouter: "
            "it cannot take websockets",
        ))
    verdicts = facts.get("origin_verdicts")
    if verdicts is not None:
        refused = [origin for origin, ok in verdicts.items() if not ok]
        if refused and facts["settings"]["DEBUG"]:
            hosts = facts["settings"]["ALLOWED_HOSTS"]
            out.append(Finding(
                "origin-not-allowed", True,
                f"AllowedHostsOriginValidator refuses pages on {', '.join(refused)} (ALLOWED_HOSTS = {hosts}): "
                "their handshakes get HTTP 403",
            ))
        if "*" not in facts.get("allowed_origins", []):
            out.append(Finding(
                "no-origin-header", False,
                "an origin validator guards the websockets: a client that sends no Origin header gets HTTP 403",
            ))
    for route in facts["routes"]:
        consumer = route["consumer"] or {}
        name = consumer.get("name", "the consumer")
        if not route["as_asgi"]:
            out.append(Finding(
                "no-as-asgi", True,
                f"the route {route['pattern']!r} points at the class {name}: the handshake gets HTTP 500 "
                "(\"can't be used in 'await' expression\")",
            ))
        if consumer.get("reads_user") and "AuthMiddleware" not in facts.get("middleware", []):
            out.append(Finding(
                "no-auth-middleware", True,
                f"{name} reads self.scope['user'] but no AuthMiddlewareStack wraps its route: every handshake "
                "gets HTTP 500 (KeyError: 'user')",
            ))
        elif consumer.get("reads_user"):
            # Fine as written; these are what a learner's browser then meets (step 9's session pitfalls).
            out.append(Finding(
                "session-from-another-project", False,
                f"{name} takes its user from the session: a browser holding a sessionid cookie from another "
                "project on this host is anonymous here, so refused (HTTP 403)",
            ))
            out.append(Finding(
                "session-deleted", False,
                f"{name} reads its user at the handshake only: after a logout elsewhere an open tab still chats, "
                "and its next handshake is refused (HTTP 403)",
            ))
        if consumer.get("accepts") is False:
            out.append(Finding(
                "never-accepts", True,
                f"{name}.connect() never calls self.accept(): clients hang, then drop (code 1006) after 5 s",
            ))
    for path, routed in sorted(facts.get("page_paths", {}).items()):
        if routed is False:
            patterns = ", ".join(repr(r["pattern"]) for r in facts["routes"]) or "none"
            out.append(Finding(
                "path-mismatch", True,
                f"the page opens {path} but no websocket route matches it (patterns: {patterns}): "
                f"HTTP 500, \"No route found for path '{path.lstrip('/')}'\"",
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


def page_findings(pages: dict, consumers: list[dict]) -> list[Finding]:
    """Check what the pages' scripts send and which scheme they use, against what the consumers read."""
    out = []
    if pages["insecure_only"]:
        out.append(Finding(
            "mixed-content", True,
            f"{', '.join(pages['insecure_only'])} always opens ws://: served over https, the browser blocks it",
        ))
    if any(c.get("parses_json") for c in consumers):
        for send in pages["plain_sends"]:
            out.append(Finding(
                "plain-text-frame", True,
                f"{send} sends plain text but the consumer parses JSON: it raises and the socket closes with 1011",
            ))
    wanted = {key for c in consumers for key in c.get("reads_keys", [])}
    for name, keys in pages["sent_keys"]:
        if wanted and not wanted & keys:
            out.append(Finding(
                "missing-message-key", True,
                f"{name} sends {sorted(keys)} but the consumer reads {sorted(wanted)}: KeyError, socket closed 1011",
            ))
    return out


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
    for routing in _files(project, ("routing.py",)):
        for line in routing.read_text(encoding="utf-8").splitlines():
            if re.search(r"(re_)?path\(.*\b\w*Consumer\s*\)", line) and ".as_asgi(" not in line:
                out.append(Finding("no-as-asgi", True, f"{routing.relative_to(project)}: {line.strip()}"))
    return out


