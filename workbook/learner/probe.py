"""The facts the checks read from a loaded project, and a memo so that the same project's facts load once.

`python -m workbook.learner.probe PACKAGE`, run inside a project, loads its settings and ASGI application and
prints what the checks need as JSON. Loading Django takes about a second of CPU, and the same files are loaded again
and again: the stage tests build a Run per (step, server kind), each parallel test worker is a process of its own,
and a learner runs `make check` on a workspace that has not changed since. `load()` keeps each answer in
.workbook/facts/, under everything it depends on.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util  # binds importlib too
import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

from ..project import READS_ENV
from ..registry import project_files
from ..state import STATE_DIR, TIMEOUT, write_whole

MEMO = STATE_DIR / "facts"


def inputs(project: Path, env: dict[str, str]) -> str:
    """Fingerprint what the facts depend on: the project's files, the environment they read, and the interpreter.

    The files are every file of the project (project_files: no database, no caches), by their place in it: the facts
    name no path, so a copy of a step in another directory has the same ones. The environment is Django's and
    Python's own variables (DJANGO_*, PYTHON*) and each name the project's code reads, with the project's own path
    written as "<project>" (PYTHONPATH names it). The interpreter counts with its installed distributions and this
    module's code (_interpreter). The database is no input: makemigrations reads only its migration history, and a
    history it finds inconsistent fails the probe, and a failure is never remembered.
    """
    digest = hashlib.sha256(f"{_interpreter()}\0".encode())
    read: set[str] = set()
    for name in project_files(project):
        try:
            data = (project / name).read_bytes()
        except OSError:
            data = b"\0missing"
        digest.update(name.encode() + b"\0" + hashlib.sha256(data).digest())
        if name.endswith(".py"):
            read.update(READS_ENV.findall(data.decode("utf-8", "replace")))
    names = sorted(read | {key for key in env if key.startswith(("DJANGO_", "PYTHON"))})
    here = str(project)
    values = [env[key].replace(here, "<project>") if key in env else None for key in names]
    digest.update(json.dumps([names, values]).encode())
    return digest.hexdigest()


@functools.cache
def _interpreter() -> str:
    """Name this interpreter, the distributions installed in it and this module's code: what loads the facts."""
    places = sorted({sysconfig.get_path("purelib"), sysconfig.get_path("platlib")})
    installed = sorted(name for place in places if os.path.isdir(place) for name in os.listdir(place)
                       if name.endswith((".dist-info", ".egg-info", ".pth")))
    code = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()
    return json.dumps([sys.executable, sys.version, places, installed, code])


def load(project: Path, package: str, env: dict[str, str]) -> dict | subprocess.CompletedProcess:
    """Return the project's facts, loading them in a fresh interpreter unless these inputs were loaded before.

    A failed load returns the finished process, for the caller to explain; it is not remembered.
    """
    kept = MEMO / f"{inputs(project, env)}.json"
    try:
        return json.loads(kept.read_text(encoding="utf-8"))  # a copy: a check that edits its facts edits only its own
    except (OSError, ValueError):
        pass
    result = subprocess.run([sys.executable, "-m", "workbook.learner.probe", package], cwd=project, env=env,
                            capture_output=True, text=True, timeout=TIMEOUT * 2)
    if result.returncode != 0:
        return result
    facts = json.loads(result.stdout.strip().splitlines()[-1])
    MEMO.mkdir(parents=True, exist_ok=True)
    write_whole(kept, lambda part: part.write_text(json.dumps(facts), encoding="utf-8"))
    return facts


def _probe(package: str) -> int:
    """Load the project's settings and ASGI application; print the facts the checks need, as JSON."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", f"{package}.settings")
    import django
    from django.conf import settings

    django.setup()
    application = importlib.import_module(f"{package}.asgi").application
    facts = {
        "installed_apps": list(settings.INSTALLED_APPS),
        "asgi_application": getattr(settings, "ASGI_APPLICATION", None),
        "application": type(application).__name__,
        "protocols": sorted(getattr(application, "application_mapping", None) or {}),
        "consumer": None,
    }
    if importlib.util.find_spec("chat") and importlib.util.find_spec("chat.consumers"):
        consumers = importlib.import_module("chat.consumers")
        facts["consumer"] = hasattr(consumers, "ChatConsumer")
        if facts["consumer"]:
            facts["consumer_class"] = _class_facts(consumers.ChatConsumer)
    facts["message_model"] = message_facts()
    print(json.dumps(facts))
    return 0


def _class_facts(cls) -> dict:
    """Name a consumer's bases and, for each handler, the class that defines it and whether it is a coroutine."""
    import inspect

    methods = {}
    for name in ("connect", "disconnect", "receive", "receive_json", "chat_message"):
        owner = next((klass.__name__ for klass in cls.__mro__ if name in vars(klass)), None)
        methods[name] = {"owner": owner, "coroutine": inspect.iscoroutinefunction(getattr(cls, name, None))}
    return {"bases": [klass.__name__ for klass in cls.__mro__[1:]], "methods": methods}


def message_facts() -> dict:
    """Describe chat.Message inside a loaded project (run by the facts probe): fields, admin, migration."""
    import io

    from django.apps import apps
    from django.contrib import admin
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    try:
        model = apps.get_model("chat", "Message")
    except LookupError:
        return {"model": False}
    fields = {field.name: field for field in model._meta.get_fields()}
    user = fields.get("user")
    facts = {"model": True, "fields": sorted(fields), "admin": admin.site.is_registered(model),
             "user_fk": bool(user and user.many_to_one and user.related_model is get_user_model())}
    try:
        call_command("makemigrations", "chat", check=True, dry_run=True, stdout=io.StringIO())
        facts["migrated"] = True
    except SystemExit:
        facts["migrated"] = False
    return facts


if __name__ == "__main__":
    sys.exit(_probe(sys.argv[1]))
