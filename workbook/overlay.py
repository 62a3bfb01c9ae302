"""Settings a served project runs with when the runner must add something its files do not say.

The runner points DJANGO_SETTINGS_MODULE here only for such a run (serving other machines, tracing events);
every other run uses the project's own settings untouched. WORKBOOK_SETTINGS names the project's module, and
each WORKBOOK_* variable below adds one thing on top of it. Django imports this module in the server process.
"""

import os
from importlib import import_module

_project = import_module(os.environ["WORKBOOK_SETTINGS"])
globals().update({name: value for name, value in vars(_project).items() if name.isupper()})

_extra_hosts = [host for host in os.environ.get("WORKBOOK_EXTRA_HOSTS", "").split(",") if host]
if _extra_hosts:
    # An empty ALLOWED_HOSTS under DEBUG admits only the loopback names: keep those when adding more.
    _own = list(getattr(_project, "ALLOWED_HOSTS", None) or [".localhost", "127.0.0.1", "[::1]"])
    ALLOWED_HOSTS = [*_own, *(host for host in _extra_hosts if host not in _own)]

if os.environ.get("WORKBOOK_ASGI_APPLICATION"):
    ASGI_APPLICATION = os.environ["WORKBOOK_ASGI_APPLICATION"]
