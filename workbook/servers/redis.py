"""Start and stop a throwaway `redis-server` on 127.0.0.1, and `python -m workbook redis` for learners."""

from __future__ import annotations

import os
import shutil
import socket
import time
from pathlib import Path
from urllib.parse import urlsplit

from ..errors import WorkbookError
from ..state import STATE_DIR
from .guard import GRACE
from .ports import free_port, port_is_free
from .process import GuardedProcess

GET_REDIS = (
    "install one (Debian/Ubuntu: sudo apt install redis-server; macOS: brew install redis; "
    "Windows: use WSL or Docker: docker run -p 6379:6379 redis)"
)


def binary() -> str | None:
    """Return the path of `redis-server`, or None when it is not installed."""
    return shutil.which("redis-server")


def ping(host: str, port: int, timeout: float = 1.0) -> bool:
    """Tell whether a Redis answers PING on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer(GuardedProcess):
    """One `redis-server` process without persistence: `with RedisServer() as redis: redis.url`."""

    how = "redis"
    appends_log = True

    def __init__(self, port: int | None = None, host: str = "127.0.0.1", log_path: Path | None = None):
        port = port or free_port(host)
        super().__init__(host=host, port=port, label="redis",
                         log_path=log_path or STATE_DIR / "logs" / f"redis-{port}.log")

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    def command(self) -> list[str]:
        """Return the command line: no RDB snapshots, no append-only file, no config file."""
        found = binary()
        if found is None:
            raise WorkbookError(f"redis-server is not installed: {GET_REDIS}")
        return [
            found, "--port", str(self.port), "--bind", self.host, "--save", "", "--appendonly", "no",
            "--dir", str(self.log_path.parent), "--dbfilename", f"redis-{self.port}.rdb",
        ]

    def answers(self) -> bool:
        return ping(self.host, self.port)

    def busy(self) -> str:
        return f"port {self.port} is busy: stop what runs there, or choose another port"

    def exited(self) -> str:
        return f"redis-server did not answer on port {self.port}: read {self.log_path}"

    def silent(self, timeout: float) -> str:
        return self.exited()

    def stop(self, timeout: float = GRACE) -> None:
        """Stop redis-server (by its PID, with its guard) and wait until its port is free."""
        started = self.process is not None
        super().stop(timeout)
        deadline = time.monotonic() + timeout
        while started and not port_is_free(self.port, self.host) and time.monotonic() < deadline:
            time.sleep(0.05)


def uses_redis_url(project: Path) -> bool:
    """Tell whether a project's settings read REDIS_URL (step 07 and the final project do)."""
    return any("REDIS_URL" in path.read_text(encoding="utf-8") for path in project.glob("*/settings.py"))


def check_redis_url(project: Path, url: str | None = None) -> None:
    """Raise a one-line WorkbookError when REDIS_URL is set for a project that uses it and nothing answers."""
    url = os.environ.get("REDIS_URL", "") if url is None else url
    if not url or not uses_redis_url(project):
        return
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss") or not parts.hostname:
        raise WorkbookError(f"REDIS_URL={url!r} is not a Redis URL: use e.g. redis://127.0.0.1:6379/0")
    if not ping(parts.hostname, parts.port or 6379) and parts.scheme == "redis":
        get = "start one with `make redis` (or `python -m workbook redis`)" if binary() else GET_REDIS
        raise WorkbookError(f"no Redis answers at REDIS_URL={url}: {get}, or unset REDIS_URL for the in-memory layer")


def cmd_redis(args) -> int:
    """Run a redis-server in the foreground until Ctrl-C, printing the REDIS_URL to use."""
    if binary() is None:
        raise WorkbookError(f"redis-server is not installed: {GET_REDIS}")
    if not port_is_free(args.port, "127.0.0.1"):
        raise WorkbookError(
            f"port {args.port} is busy (is a Redis already running there?): use it, or run "
            f"`python -m workbook redis --port {args.port + 1}`"
        )
    from .foreground import foreground

    redis = RedisServer(port=args.port)
    return foreground(
        redis,
        up=lambda: [f"workbook: Redis is up. In another terminal: REDIS_URL={redis.url} make step-7 run  "
                    "(Ctrl-C stops it)"],
        stopped="workbook: stopped Redis.",
        died=lambda: f"redis-server stopped by itself: read {redis.log_path}",
    )


def add_commands(sub) -> None:
    """Add `redis`: a throwaway Redis for step 07 and the final project."""
    redis = sub.add_parser("redis", help="run a throwaway redis-server (no persistence) for step 07")
    redis.add_argument("--port", type=int, default=int(os.environ.get("REDIS_PORT") or 6379))
    redis.set_defaults(func=cmd_redis)
