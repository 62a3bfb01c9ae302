"""Read where a server should listen (HOST and PORT, as a learner typed them) and say plainly what is wrong."""

from __future__ import annotations

import errno
import ipaddress
import os
import re
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from ..errors import WorkbookError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
_NAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?")
# Windows answers WSAEACCES for a port inside a range it reserves (Hyper-V, WSL), not only for privileged ports.
_WSAEACCES, _WSAEADDRINUSE = 10013, 10048


@dataclass(frozen=True)
class Given:
    """A value the learner gave, and how they gave it: an environment variable (HOST=…) or an option (--host …)."""

    name: str
    value: str
    from_env: bool = True

    def spell(self, value: object | None = None) -> str:
        """Write `value` (default: what was given) the way the learner gave this one."""
        value = self.value if value is None else value
        return f"{self.name}={value}" if self.from_env else f"--{self.name.lower()} {value}"

    @property
    def called(self) -> str:
        """The name the learner used: PORT, or --port."""
        return self.name if self.from_env else f"--{self.name.lower()}"

    def __str__(self) -> str:
        return self.spell()


def given(name: str, option: str | None) -> Given:
    """Return what the learner gave for HOST or PORT: the option if used, else the variable, else the default."""
    if option is not None:
        return Given(name, option, from_env=False)
    if name in os.environ:
        return Given(name, os.environ[name])
    default = DEFAULT_HOST if name == "HOST" else str(DEFAULT_PORT)
    return Given(name, default, from_env=bool(os.environ.get("MAKELEVEL")))


def read_port(value: Given) -> int:
    """Turn a typed port into a number a server can listen on, or say in one line what is wrong with it."""
    text = value.value.strip()
    example = value.spell(DEFAULT_PORT + 1)
    if not text:
        raise WorkbookError(f"{value.called} is empty: leave it out for {DEFAULT_PORT}, or give one, e.g. {example}")
    if not re.fullmatch(r"[+-]?[0-9]+", text):
        kind = "a whole number" if re.fullmatch(r"[+-]?[0-9]*[.,][0-9]*", text) else "a number"
        raise WorkbookError(f"{value} is not {kind}: a port is a whole number from 1024 to 65535, e.g. {example}")
    port = int(text)
    if port == 0:
        raise WorkbookError(f"{value} would let the system pick any port, and nobody would know which: "
                            f"choose one from 1024 to 65535, e.g. {example}")
    if not 1 <= port <= 65535:
        raise WorkbookError(f"{value} is out of range: ports go from 1 to 65535; use one from 1024 up, e.g. {example}")
    return port


def read_host(value: Given) -> str:
    """Turn a typed host into an address or name a server can listen on, or say in one line what is wrong."""
    text = value.value.strip()
    if not text:
        raise WorkbookError(f"{value.called} is empty: leave it out to serve this machine only ({DEFAULT_HOST}), "
                            f"or give {value.spell('0.0.0.0')} to let other machines join")
    if "://" in text:
        parts = urlsplit(text)
        host = parts.hostname or DEFAULT_HOST
        port = f" {Given('PORT', str(parts.port), value.from_env)}" if _port_of(parts) else ""
        raise WorkbookError(f"{value} is a URL: give only its address, {value.spell(host)}{port}")
    bare = text[1:-1] if text.startswith("[") and text.endswith("]") else text
    if _is_ip(bare):
        return bare
    host, colon, port = text.rpartition(":")
    if colon and port.isdigit() and (_is_ip(host.strip("[]")) or _NAME.fullmatch(host)):
        raise WorkbookError(f"{value} includes a port: give them apart, "
                            f"{value.spell(host.strip('[]'))} {Given('PORT', port, value.from_env)}")
    if not _NAME.fullmatch(text) or text.replace(".", "").isdigit():
        raise WorkbookError(f"{value} is not a host name or address: {_choices(value)}")
    try:
        socket.getaddrinfo(text, None, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise WorkbookError(f"{value} is a name this machine cannot resolve: {_choices(value)}") from None
    return text


def _choices(host: Given) -> str:
    return f"use {host.spell(DEFAULT_HOST)} (this machine only) or {host.spell('0.0.0.0')} (other machines can join)"


def _port_of(parts) -> int | None:
    try:
        return parts.port
    except ValueError:
        return None


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def is_wildcard(host: str) -> bool:
    """Tell whether `host` means every address of this machine (0.0.0.0 or ::)."""
    return _is_ip(host) and ipaddress.ip_address(host).is_unspecified


def connect_host(host: str) -> str:
    """Return where a client on this machine reaches a server listening on `host` (loopback for a wildcard)."""
    if is_wildcard(host):
        return "::1" if ":" in host else "127.0.0.1"
    return host


def try_bind(host: str, port: int) -> OSError | None:
    """Bind host:port for a moment, as a server would; return why that failed, or None when it worked."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            if os.name != "nt":
                # Ignore sockets of a server that just stopped (TIME_WAIT); a listener still blocks.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
    except OSError as error:
        return error
    except OverflowError as wrong:
        return OSError(errno.EINVAL, str(wrong))
    return None


def is_busy(error: OSError) -> bool:
    """Tell whether a failed bind means only that something else listens there already."""
    return error.errno == errno.EADDRINUSE or getattr(error, "winerror", None) == _WSAEADDRINUSE


def listen_problem(error: OSError, host: Given | str, port: Given | int) -> str:
    """Say in one line why nothing can listen on host:port, for any failure but a busy port."""
    host = host if isinstance(host, Given) else Given("HOST", str(host))
    port = port if isinstance(port, Given) else Given("PORT", str(port))
    try:
        number = read_port(port)
    except WorkbookError as wrong:
        return str(wrong)
    choices = _choices(host)
    if isinstance(error, socket.gaierror):
        return f"{host} is a name this machine cannot resolve: {choices}"
    if error.errno == errno.EADDRNOTAVAIL:
        return f"{host} is not an address of this machine: {choices}"
    if error.errno == errno.EAFNOSUPPORT:
        return f"{host} is an IPv6 address, and IPv6 is off on this machine: {choices}"
    if getattr(error, "winerror", None) == _WSAEACCES and number >= 1024:
        return (f"Windows reserves {port} for something else (see `netsh interface ipv4 show excludedportrange "
                f"protocol=tcp`): use another, e.g. {port.spell(DEFAULT_PORT + 1)}")
    if error.errno == errno.EACCES or getattr(error, "winerror", None) == _WSAEACCES:
        return (f"{port} needs administrator rights (ports below 1024 are reserved): "
                f"use one from 1024 up, e.g. {port.spell(DEFAULT_PORT)}")
    return f"cannot listen on {host.value}:{number} ({error.strerror or error}): {choices}, and another port"
