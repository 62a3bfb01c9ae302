"""Make Ctrl-C and a plain `kill` end a foreground run, however the run was started."""

from __future__ import annotations

import signal

STOPS = (signal.SIGINT, signal.SIGTERM)


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def stop_on_signals() -> None:
    """Turn SIGINT and SIGTERM into KeyboardInterrupt in this process, and so undo an inherited SIG_IGN."""
    # A background job of a non-interactive shell (`setsid make step-4 run &`) starts with SIGINT ignored, and
    # Python keeps an ignored SIGINT ignored; a handler also means a child we exec starts with the default again.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _interrupt)
