"""The notebooks' side: the kernel API `from workbook import notebooks as nb`, JupyterLab, the pitfall lab."""

from .kernel import (
    AppServer,
    Source,
    check_kernel,
    compare_scopes,
    contents,
    diff,
    events,
    fetch,
    in_step,
    inprocess_scope,
    output,
    page,
    printed_scope,
    record,
    serve_app,
    source,
    start,
    stop,
)

__all__ = [
    "AppServer", "Source", "check_kernel", "compare_scopes", "contents", "diff", "events", "fetch", "in_step",
    "inprocess_scope", "output", "page", "printed_scope", "record", "serve_app", "source", "start", "stop",
]
