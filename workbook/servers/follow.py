"""Copy a server's growing log file to the terminal while a foreground run lasts."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path


def follow(path: Path, stop: threading.Event) -> None:
    """Copy a growing log file to stdout until told to stop."""
    offset = 0
    while True:
        finished = stop.is_set()
        try:
            with open(path, "rb") as f:
                f.seek(offset)
                chunk = f.read()
        except OSError:
            chunk = b""
        if chunk:
            offset += len(chunk)
            sys.stdout.write(chunk.decode("utf-8", errors="replace"))
            sys.stdout.flush()
        if finished:
            return
        time.sleep(0.1)
