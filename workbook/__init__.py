"""The workbook runner: the step registry, servers, a websocket client, diffs and the CLI."""

from .errors import WorkbookError
from .registry import Step, get_step, load_steps
from .server import Server, free_port, port_is_free, start

__all__ = ["Server", "Step", "WorkbookError", "free_port", "get_step", "load_steps", "port_is_free", "start"]
