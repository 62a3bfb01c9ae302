"""The notebooks' side: the kernel API `from workbook import notebooks as nb`, JupyterLab, the pitfall lab."""

from .kernel import AppServer, check_kernel, events, in_step, output, printed_scope, record, serve_app, start, stop
from .show import Source, compare_scopes, contents, diff, fetch, inprocess_scope, page, source

__all__ = [
    "AppServer", "Source", "check_kernel", "compare_scopes", "contents", "diff", "events", "fetch", "in_step",
    "inprocess_scope", "output", "page", "printed_scope", "record", "serve_app", "source", "start", "stop",
]
