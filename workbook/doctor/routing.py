"""The doctor's rules about routing: the websocket entry, the origin validator, routes, consumers, page paths."""

from __future__ import annotations

import re
from pathlib import Path

from .rules import Finding, files_ending

_ROUTES = re.compile(r"^websocket_urlpatterns\s*[:=]", re.MULTILINE)
_CONSUMER = re.compile(r"^class\s+(\w+)\s*\([^)]*\b\w*(?:Consumer)\b", re.MULTILINE)


def websocket_code(project: Path) -> dict[str, list[str]]:
    """Find websocket code in the project's text: modules defining websocket_urlpatterns, and consumer classes."""
    code: dict[str, list[str]] = {"routes": [], "consumers": []}
    for path in files_ending(project, (".py",)):
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
