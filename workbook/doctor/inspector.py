"""Load one Django project the way a server would and print what the doctor needs, as JSON.

Run as a script by the project's own Python, inside the project directory (never two projects in one process):
`python workbook/doctor/inspector.py daphne|runserver SETTINGS ASGI_TARGET [PAGE_PATH …]`. It needs only the
standard library and the project's own packages, so it runs in a learner's virtualenv as well as in ours.
`daphne` imports the ASGI module first, as the daphne CLI does; `runserver` sets Django up first, as
`manage.py runserver` does.
"""

from __future__ import annotations

import importlib
import inspect
import json
import os
import re
import sys
import traceback
from urllib.parse import urlparse


def _error(exc: BaseException) -> dict:
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if os.getcwd() in os.path.abspath(f.filename)]
    where = f"{os.path.relpath(frames[-1].filename)}:{frames[-1].lineno}" if frames else ""
    return {"type": f"{type(exc).__module__}.{type(exc).__qualname__}", "message": str(exc), "where": where}


def _load(mode: str, target: str):
    module_name, _, attr = target.partition(":")
    if mode == "runserver":
        import django
        from django.conf import settings

        django.setup()
        # runserver serves ASGI_APPLICATION, which may name another module than asgi.py.
        if getattr(settings, "ASGI_APPLICATION", None):
            module_name, _, attr = settings.ASGI_APPLICATION.rpartition(".")
    module = importlib.import_module(module_name)
    return getattr(module, attr or "application")


def _consumer_facts(cls) -> dict:
    """Say whether a consumer class accepts in connect, and which JSON keys its receive reads."""
    facts = {"name": f"{cls.__module__}.{cls.__qualname__}", "accepts": None, "reads_keys": [], "parses_json": False}
    own = [k for k in cls.__mro__ if not k.__module__.startswith(("channels.", "builtins"))]
    # Only AuthMiddlewareStack puts a user in the scope (step 9's pitfall no-auth-middleware).
    facts["reads_user"] = any(re.search(r"scope\[['\"]user['\"]\]", inspect.getsource(k)) for k in own)
    for method in ("connect", "websocket_connect"):
        for klass in own:
            if method in vars(klass):
                source = inspect.getsource(vars(klass)[method])
                facts["accepts"] = bool(re.search(r"\baccept\(|super\(\)\.(websocket_)?connect\(", source))
                break
        if facts["accepts"] is not None:
            break
    for method in ("receive", "receive_json", "websocket_receive"):
        for klass in own:
            if method in vars(klass):
                source = inspect.getsource(vars(klass)[method])
                facts["parses_json"] |= "json.loads" in source or method == "receive_json"
                keys = re.findall(r"[\w)\]]\[['\"](\w+)['\"]\]|\.get\(['\"](\w+)['\"]\)", source)
                facts["reads_keys"] += [a or b for a, b in keys if (a or b) not in {"type", "text", "bytes"}]
    from channels.generic.websocket import AsyncJsonWebsocketConsumer, JsonWebsocketConsumer

    facts["parses_json"] |= issubclass(cls, (JsonWebsocketConsumer, AsyncJsonWebsocketConsumer))
    return facts


def _walk(app, facts: dict, prefix: str = "") -> None:
    """Follow routers and middleware down to the consumers, noting what a learner can get wrong."""
    from channels.consumer import AsyncConsumer
    from channels.routing import ProtocolTypeRouter, URLRouter
    from channels.security.websocket import OriginValidator

    if isinstance(app, ProtocolTypeRouter):
        facts["protocols"] = sorted(app.application_mapping)
        if "websocket" in app.application_mapping:
            _walk(app.application_mapping["websocket"], facts)
    elif isinstance(app, OriginValidator):
        facts["allowed_origins"] = [str(o) for o in app.allowed_origins]
        facts["origin_verdicts"] = {
            origin: app.valid_origin(urlparse(origin))
            for origin in ("http://localhost", "http://127.0.0.1")
        }
        _walk(app.application, facts, prefix)
    elif isinstance(app, URLRouter):
        facts.setdefault("routers", 0)
        facts["routers"] += 1
        for route in app.routes:
            pattern = str(route.pattern)
            callback = route.callback
            if isinstance(callback, URLRouter) or hasattr(callback, "inner") or hasattr(callback, "application"):
                _walk(callback, facts, prefix + pattern)
                continue
            entry = {"pattern": prefix + pattern, "as_asgi": True, "consumer": None}
            if inspect.isclass(callback) and issubclass(callback, AsyncConsumer):
                entry["as_asgi"] = False
                entry["consumer"] = _consumer_facts(callback)
            elif hasattr(callback, "consumer_class"):
                entry["consumer"] = _consumer_facts(callback.consumer_class)
            facts["routes"].append(entry)
    elif hasattr(app, "inner"):
        facts.setdefault("middleware", []).append(type(app).__name__)
        _walk(app.inner, facts, prefix)
    elif hasattr(app, "consumer_class"):
        facts["routes"].append({"pattern": prefix or "(any)", "as_asgi": True,
                                "consumer": _consumer_facts(app.consumer_class)})


def _resolve(app, path: str) -> bool | None:
    """Tell whether a websocket to `path` finds a route, as URLRouter would; None when there is no router."""
    from channels.routing import ProtocolTypeRouter, URLRouter
    from channels.security.websocket import OriginValidator

    while not isinstance(app, URLRouter):
        if isinstance(app, ProtocolTypeRouter):
            app = app.application_mapping.get("websocket")
        elif isinstance(app, OriginValidator):
            app = app.application
        elif hasattr(app, "inner"):
            app = app.inner
        else:
            return None
    remaining = path.lstrip("/")
    for route in app.routes:
        match = route.pattern.match(remaining)
        if match:
            if isinstance(route.callback, URLRouter):
                return _resolve(route.callback, "/" + match[0])
            return True
    return False


def _redis_hosts(layers: dict) -> list[list]:
    """List (host, port) of every Redis a channels_redis layer is configured to use."""
    found = []
    for layer in layers.values():
        if "channels_redis" not in str(layer.get("BACKEND", "")):
            continue
        for host in layer.get("CONFIG", {}).get("hosts", [("localhost", 6379)]):
            if isinstance(host, dict):
                host = host.get("address", "redis://localhost:6379")
            if isinstance(host, str):
                parts = urlparse(host if "://" in host else f"redis://{host}")
                if parts.scheme != "unix":
                    found.append([parts.hostname or "localhost", parts.port or 6379])
            elif isinstance(host, (tuple, list)) and len(host) == 2:
                found.append([str(host[0]), int(host[1])])
    return found


def _database() -> dict:
    """Say whether the default database exists, has the session table, and how many migrations it lacks."""
    from django.db import DEFAULT_DB_ALIAS, connections
    from django.db.migrations.executor import MigrationExecutor
    from django.db.migrations.loader import MigrationLoader

    connection = connections[DEFAULT_DB_ALIAS]
    name = str(connection.settings_dict.get("NAME") or "")
    inside = os.path.isabs(name) and name.startswith(os.getcwd() + os.sep)
    facts = {"name": os.path.relpath(name) if inside else name, "exists": True,
             "session_table": None, "unapplied": None}
    try:
        # Connecting to sqlite creates the file: a database that is not there must stay not there.
        if connection.vendor == "sqlite" and name != ":memory:" and not os.path.exists(name):
            graph = MigrationLoader(None, ignore_no_migrations=True).graph
            facts.update(exists=False, session_table=False, unapplied=len(graph.nodes))
            return facts
        executor = MigrationExecutor(connection)
        facts["unapplied"] = len(executor.migration_plan(executor.loader.graph.leaf_nodes()))
        facts["session_table"] = "django_session" in connection.introspection.table_names()
    except Exception as exc:  # noqa: BLE001 - an unreachable database is itself worth reporting
        facts["error"] = _error(exc)
    finally:
        connection.close()
    return facts


def inspect_project(mode: str, settings_module: str, target: str, page_paths: list[str]) -> dict:
    os.environ["DJANGO_SETTINGS_MODULE"] = settings_module
    sys.path.insert(0, os.getcwd())
    facts: dict = {"mode": mode, "import_error": None, "routes": [], "protocols": None, "checks": []}
    try:
        application = _load(mode, target)
    except BaseException as exc:  # noqa: BLE001 - any failure to load is itself the finding
        facts["import_error"] = _error(exc)
        return facts
    from django.conf import settings
    from django.core import checks

    facts["settings"] = {
        "INSTALLED_APPS": list(settings.INSTALLED_APPS),
        "ALLOWED_HOSTS": list(settings.ALLOWED_HOSTS),
        "DEBUG": bool(settings.DEBUG),
        "ASGI_APPLICATION": getattr(settings, "ASGI_APPLICATION", None),
        "CHANNEL_LAYERS": {k: v.get("BACKEND") for k, v in getattr(settings, "CHANNEL_LAYERS", {}).items()},
        "REDIS_HOSTS": _redis_hosts(getattr(settings, "CHANNEL_LAYERS", {})),
        "SESSION_ENGINE": getattr(settings, "SESSION_ENGINE", ""),
    }
    facts["checks"] = [
        {"id": m.id, "level": m.level, "msg": m.msg, "serious": m.is_serious()}
        for m in checks.run_checks(include_deployment_checks=False)
    ]
    facts["app_type"] = f"{type(application).__module__}.{type(application).__qualname__}"
    try:
        _walk(application, facts)
        facts["page_paths"] = {path: _resolve(application, path) for path in page_paths}
    except Exception as exc:  # noqa: BLE001 - an odd application shape must not hide the other findings
        facts["walk_error"] = _error(exc)
    facts["database"] = _database()
    return facts


if __name__ == "__main__":
    # Run as a script, this file's directory heads sys.path: keep workbook's modules out of the project's way.
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != here]
    mode, settings_module, target, *paths = sys.argv[1:]
    result = inspect_project(mode, settings_module, target, paths)
    sys.stdout.flush()
    print("\n@@doctor@@" + json.dumps(result, default=str))
