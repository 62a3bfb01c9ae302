"""The workbook runner: the step registry, servers, a websocket client, diffs and the CLI."""

from importlib import import_module

# Re-exported lazily, so `python -m workbook setup` runs on a bare Python before any dependency is installed.
_EXPORTS = {
    "WorkbookError": "errors",
    "Step": "registry",
    "get_step": "registry",
    "load_steps": "registry",
    "Server": "servers.server",
    "free_port": "servers.ports",
    "port_is_free": "servers.ports",
    "start": "servers.server",
    "client": None,
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'workbook' has no attribute {name!r}")
    module = _EXPORTS[name]
    if module is None:
        return import_module(f".{name}", __name__)
    return getattr(import_module(f".{module}", __name__), name)
