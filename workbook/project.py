"""What a Django project's manage.py says: its settings module, its ASGI application, the overlay that wraps it."""

from __future__ import annotations

import re
from pathlib import Path

from .errors import WorkbookError

# A name a project's code reads from the environment: os.environ.get('X'), os.environ['X'], os.getenv('X'). The
# migrate stamp and the learner checks' facts both depend on the values of these.
READS_ENV = re.compile(r"""(?:environ\.get|environ\[|getenv)\(?\s*['"](\w+)['"]""")


def asgi_target(project: Path) -> str:
    """Find `package.asgi:application` for a project, from the settings module manage.py names."""
    module = settings_module(project)
    package = module.removesuffix(".settings") if module.endswith(".settings") else "mychannels"
    return f"{package}.asgi:application"


def settings_module(project: Path) -> str:
    """Read the settings module that manage.py names, as Django does when it starts."""
    try:
        text = (project / "manage.py").read_text(encoding="utf-8")
    except OSError:
        raise WorkbookError(f"{project} has no manage.py: is it a Django project directory?") from None
    match = re.search(r"DJANGO_SETTINGS_MODULE['\"]\s*,\s*['\"]([\w.]+)['\"]", text)
    return match.group(1) if match else "mychannels.settings"


def overlay_env(project: Path, **additions: str) -> dict[str, str]:
    """Return the environment that serves `project` with workbook.overlay adding `additions` to its settings.

    Each keyword becomes a WORKBOOK_<NAME> variable that workbook/overlay.py reads (extra_hosts, asgi_application).
    """
    env = {"DJANGO_SETTINGS_MODULE": "workbook.overlay", "WORKBOOK_SETTINGS": settings_module(project)}
    env.update({f"WORKBOOK_{name.upper()}": value for name, value in additions.items()})
    return env
