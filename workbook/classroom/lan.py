"""Serve the other machines of a room: find this machine's addresses and admit them as hosts for one run."""

from __future__ import annotations

import ipaddress
import os
import socket
import struct
import sys
from dataclasses import dataclass
from pathlib import Path

from ..project import overlay_env, settings_module
from ..registry import ROOT
from ..servers.listen import is_wildcard

# What final/ admits when DJANGO_ALLOWED_HOSTS is unset; a run that adds hosts keeps these.
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "[::1]")
# A documentation address (RFC 5737): connecting a UDP socket to it only looks up the route, and sends nothing.
_ROUTE_PROBE = ("192.0.2.1", 9)
_SIOCGIFFLAGS, _SIOCGIFADDR, _IFF_UP, _IFF_LOOPBACK = 0x8913, 0x8915, 0x1, 0x8


def serves_others(host: str) -> bool:
    """Tell whether a server listening on `host` can be reached from other machines."""
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:
        return any(not ipaddress.ip_address(address).is_loopback for address in resolved_addresses(host))


def resolved_addresses(name: str) -> list[str]:
    """Return the IPv4 addresses `name` resolves to here (none when it does not resolve)."""
    try:
        found = socket.getaddrinfo(name, None, socket.AF_INET, socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return []
    return list(dict.fromkeys(info[4][0] for info in found))


def outbound_address() -> str | None:
    """Return the address this machine's default route leaves from, without sending a packet."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.connect(_ROUTE_PROBE)
            return sock.getsockname()[0]
    except OSError:
        return None


def interface_addresses() -> list[str]:
    """Return the IPv4 address of each network interface that is up (Linux), loopback left out."""
    import fcntl

    found = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for _, name in socket.if_nameindex():
            request = struct.pack("256s", name.encode()[:15])
            try:
                flags = struct.unpack("H", fcntl.ioctl(sock.fileno(), _SIOCGIFFLAGS, request)[16:18])[0]
                if flags & _IFF_LOOPBACK or not flags & _IFF_UP:
                    continue
                found.append(socket.inet_ntoa(fcntl.ioctl(sock.fileno(), _SIOCGIFADDR, request)[20:24]))
            except OSError:
                continue  # an interface without an IPv4 address
    return found


def machine_addresses() -> list[str]:
    """Return this machine's network addresses, the one its default route uses first; never loopback."""
    route = outbound_address()
    if sys.platform.startswith("linux"):
        others = interface_addresses()
    else:
        others = resolved_addresses(socket.gethostname())
    found = [address for address in [route, *others] if address]
    usable = [a for a in found if not (ipaddress.ip_address(a).is_loopback or ipaddress.ip_address(a).is_unspecified)]
    return list(dict.fromkeys(usable))


def machine_names() -> list[str]:
    """Return the names neighbours may know this machine by: its host name, and name.local where mDNS answers."""
    name = socket.gethostname().lower()
    # Django refuses a Host header that is not a valid domain name (an underscore, say), whatever ALLOWED_HOSTS says.
    if not name or name == "localhost" or not all(part.replace("-", "").isalnum() for part in name.split(".")):
        return []
    return [name] if "." in name else [name, f"{name}.local"]


def hosts_to_admit(host: str) -> tuple[list[str], list[str]]:
    """Return (addresses, names) other machines will use for a server listening on `host`; empty for loopback."""
    if not serves_others(host):
        return [], []
    if is_wildcard(host):
        return machine_addresses(), machine_names()
    try:
        ipaddress.ip_address(host)
    except ValueError:
        addresses = [a for a in resolved_addresses(host) if not ipaddress.ip_address(a).is_loopback]
        return addresses, [host.lower()]
    return [host], []


def host_header(address: str) -> str:
    """Write an address the way it appears in a Host header and in ALLOWED_HOSTS (IPv6 in brackets)."""
    return f"[{address}]" if ":" in address else address


def reads_allowed_hosts_variable(project: Path) -> bool:
    """Tell whether a project's settings take ALLOWED_HOSTS from DJANGO_ALLOWED_HOSTS, as final/ does."""
    settings = project / (settings_module(project).replace(".", "/") + ".py")
    try:
        return "DJANGO_ALLOWED_HOSTS" in settings.read_text(encoding="utf-8")
    except OSError:
        return False


@dataclass
class Admission:
    """What one run that serves other machines adds: the hosts it admits, and through which setting."""

    project: Path
    addresses: list[str]
    names: list[str]
    env: dict[str, str]
    carrier: str

    def announcement(self, port: int) -> list[str]:
        """Say which addresses to give out, and that the runner, not the project, admitted them."""
        urls = [f"http://{host_header(address)}:{port}/" for address in self.addresses]
        if urls:
            also = f" (also {', '.join(urls[1:])})" if urls[1:] else ""
            first = f"workbook: other machines on this network can join at {urls[0]}{also}"
        else:
            first = ("workbook: listening on every address, but this machine has no network address besides "
                     "loopback yet: join a network, then run again to see what to give out")
        if self.names:
            first += f"; by name, http://{self.names[-1]}:{port}/ where the network resolves it"
        shown = self.project.relative_to(ROOT) if self.project.is_relative_to(ROOT) else self.project
        admitted = ", ".join([*map(host_header, self.addresses), *self.names])
        return [first, f"workbook: the runner added {admitted} to {self.carrier} for this run only; "
                       f"{shown.as_posix()}/ is unchanged"]


def admit(host: str, project: Path) -> Admission | None:
    """Return what serving `project` on `host` must admit for other machines; None when only loopback listens.

    A project that reads DJANGO_ALLOWED_HOSTS gets the hosts there, on its own settings, as it would in production;
    any other (every step keeps startproject's ALLOWED_HOSTS = []) gets them through workbook/overlay.py.
    """
    addresses, names = hosts_to_admit(host)
    if not (addresses or names):
        return None
    project = Path(project)
    hosts = [*map(host_header, addresses), *names]
    if reads_allowed_hosts_variable(project):
        own = (os.environ.get("DJANGO_ALLOWED_HOSTS") or ",".join(LOOPBACK_HOSTS)).replace(" ", "").split(",")
        merged = ",".join(dict.fromkeys([*filter(None, own), *hosts]))
        return Admission(project, addresses, names, {"DJANGO_ALLOWED_HOSTS": merged}, "DJANGO_ALLOWED_HOSTS")
    env = overlay_env(project, extra_hosts=",".join(hosts))
    return Admission(project, addresses, names, env, "ALLOWED_HOSTS (through workbook/overlay.py)")
