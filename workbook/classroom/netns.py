"""A throwaway room on one Linux machine: a server and some laptops, each in a network namespace of its own.

The server's namespace holds a bridge with 10.231.N.1/24, and each laptop hangs off it through a veth pair
with 10.231.N.(10+i). Nothing is added to the machine's own network: every link is made directly inside the
namespaces, and deleting them removes it all. Needs root and iproute2's `ip`.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass

from ..errors import WorkbookError

PREFIX = "wbroom"


def unavailable() -> str | None:
    """Say why namespaces cannot be made here and how to get them; None when they can."""
    if not sys.platform.startswith("linux"):
        return "network namespaces exist on Linux only (run these tests in a Linux VM or container)"
    if shutil.which("ip") is None:
        return "the `ip` command is missing: install iproute2 (apt-get install iproute2)"
    if os.geteuid() != 0:
        return "making network namespaces needs root: run the tests as root, e.g. `sudo -E make test`"
    return None


@dataclass
class Machine:
    """One namespace of the room, with its address on the room's network."""

    namespace: str
    address: str

    def command(self, *cmd: str) -> list[str]:
        """Return `cmd` wrapped to run inside this machine's namespace."""
        return ["ip", "netns", "exec", self.namespace, *cmd]

    def run(self, *cmd: str, **options) -> subprocess.CompletedProcess:
        """Run `cmd` inside the namespace and wait for it (text output captured)."""
        return subprocess.run(self.command(*cmd), capture_output=True, text=True, **options)

    def ip(self, *args: str) -> None:
        """Run `ip ARGS` against this namespace; a failure is one line naming the command."""
        _ip("-n", self.namespace, *args)


def _ip(*args: str) -> None:
    result = subprocess.run(["ip", *args], capture_output=True, text=True)
    if result.returncode != 0:
        raise WorkbookError(f"`ip {' '.join(args)}` failed: {result.stderr.strip() or result.returncode}")


class Room:
    """`with Room(laptops=2) as room:` a server namespace and laptop namespaces on one bridge, removed at exit."""

    def __init__(self, laptops: int = 1, subnet: int = 1):
        if not 1 <= laptops <= 200 or not 0 <= subnet <= 255:
            raise WorkbookError("a room holds 1 to 200 laptops on subnet 10.231.0-255.0/24")
        tag = f"{PREFIX}{os.getpid()}"
        self.network = f"10.231.{subnet}.0/24"
        self.server = Machine(f"{tag}-server", f"10.231.{subnet}.1")
        self.laptops = [Machine(f"{tag}-laptop{i}", f"10.231.{subnet}.{10 + i}") for i in range(1, laptops + 1)]

    @property
    def machines(self) -> list[Machine]:
        return [self.server, *self.laptops]

    def create(self) -> Room:
        """Make the namespaces, the bridge and one veth pair per laptop; undo everything if a step fails."""
        reason = unavailable()
        if reason:
            raise WorkbookError(reason)
        sweep_stale()
        try:
            for machine in self.machines:
                _ip("netns", "add", machine.namespace)
                machine.ip("link", "set", "lo", "up")
            self.server.ip("link", "add", "room", "type", "bridge")
            self.server.ip("addr", "add", f"{self.server.address}/24", "dev", "room")
            self.server.ip("link", "set", "room", "up")
            for i, laptop in enumerate(self.laptops, 1):
                # Both ends are born inside their namespaces, so the host's own network never sees them.
                _ip("link", "add", "name", "eth0", "netns", laptop.namespace, "type", "veth",
                    "peer", "name", f"laptop{i}", "netns", self.server.namespace)
                self.server.ip("link", "set", f"laptop{i}", "master", "room", "up")
                laptop.ip("addr", "add", f"{laptop.address}/24", "dev", "eth0")
                laptop.ip("link", "set", "eth0", "up")
        except BaseException:
            self.delete()
            raise
        return self

    def delete(self) -> None:
        """Remove every namespace of the room (and with them its links); missing ones are fine."""
        for machine in self.machines:
            subprocess.run(["ip", "netns", "delete", machine.namespace], capture_output=True)

    def __enter__(self) -> Room:
        return self.create()

    def __exit__(self, *exc) -> None:
        self.delete()


def sweep_stale() -> None:
    """Delete rooms left by a process that died before it could clean up (their pid no longer runs)."""
    listing = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    for name in re.findall(rf"^({PREFIX}(\d+)-\S+)", listing, re.MULTILINE):
        namespace, pid = name[0], int(name[1])
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            subprocess.run(["ip", "netns", "delete", namespace], capture_output=True)
        except PermissionError:
            pass
