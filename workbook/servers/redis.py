"""Start and stop a throwaway `redis-server` on 127.0.0.1, and `python -m workbook redis` for learners."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path
from urllib.parse import urlsplit

from ..errors import WorkbookError
from .server import STATE_DIR, TIMEOUT, free_port, port_is_free, spawn_guarded, stop_guarded

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


class RedisServer:
    """One `redis-server` process without persistence: `with RedisServer() as redis: redis.url`."""

    def __init__(self, port: int | None = None, host: str = "127.0.0.1", log_path: Path | None = None):
        self.host, self.port = host, port or free_port(host)
        self.log_path = log_path or STATE_DIR / "logs" / f"redis-{self.port}.log"
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def command(self) -> list[str]:
        """Return the command line: no RDB snapshots, no append-only file, no config file."""
        found = binary()
        if found is None:
            raise WorkbookError(f"redis-server is not installed: {GET_REDIS}")
        return [
            found, "--port", str(self.port), "--bind", self.host, "--save", "", "--appendonly", "no",
            "--dir", str(self.log_path.parent), "--dbfilename", f"redis-{self.port}.rdb",
        ]

    def start(self, timeout: float = TIMEOUT) -> RedisServer:
        """Start redis-server and return once it answers PING."""
        if self.running:
            return self
        if not port_is_free(self.port, self.host):
            raise WorkbookError(f"port {self.port} is busy: stop what runs there, or choose another port")
        self.process = spawn_guarded(self.command(), self.log_path, append=True)
        deadline = time.monotonic() + timeout
        while not ping(self.host, self.port):
            if not self.running or time.monotonic() > deadline:
                self.stop()
                raise WorkbookError(f"redis-server did not answer on port {self.port}: read {self.log_path}")
            time.sleep(0.05)
        return self

    def stop(self, timeout: float = 10) -> None:
        """Stop redis-server (by its PID, with its guard) and wait until it has exited."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        stop_guarded(process, timeout)
        deadline = time.monotonic() + timeout
        while not port_is_free(self.port, self.host) and time.monotonic() < deadline:
            time.sleep(0.05)

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


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
    from .stopping import stop_on_signals

    stop_on_signals()
    with RedisServer(port=args.port) as redis:
        print(f"workbook: Redis is up. In another terminal: REDIS_URL={redis.url} make step-7 run  (Ctrl-C stops it)",
              flush=True)
        try:
            while redis.running:
                time.sleep(0.2)
        except KeyboardInterrupt:
            print("\nworkbook: stopped Redis.", flush=True)
            return 0
    raise WorkbookError(f"redis-server stopped by itself: read {redis.log_path}")


def add_commands(sub) -> None:
    """Add `redis`: a throwaway Redis for step 07 and the final project."""
    redis = sub.add_parser("redis", help="run a throwaway redis-server (no persistence) for step 07")
    redis.add_argument("--port", type=int, default=int(os.environ.get("REDIS_PORT") or 6379))
    redis.set_defaults(func=cmd_redis)
