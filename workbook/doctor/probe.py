"""Probe a running server over the wire: handshakes with and without an Origin, then a few frames."""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
from urllib.parse import urlsplit

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from .rules import Finding

# Longer than daphne's own handshake timeout (5 s), so a consumer that never accepts shows as a drop.
HANDSHAKE_TIMEOUT = 8.0
REPLY_TIMEOUT = 5.0


# A session key no server has issued, as a browser keeps one for 127.0.0.1 from any earlier Django project.
STALE_COOKIE = "sessionid=doctor0stale0cookie0from0another0project"


async def _handshake(url: str, origin: str | None, tls: ssl.SSLContext | None = None, cookie: str | None = None):
    """Return (101, socket) when accepted, (status, None) when refused, ("dropped", None) when not answered."""
    headers = {"Origin": origin} if origin else {}
    headers = {**headers, "Cookie": cookie} if cookie else headers or None
    options = {"ssl": tls} if tls is not None else {}
    try:
        ws = await connect(url, additional_headers=headers, open_timeout=HANDSHAKE_TIMEOUT, proxy=None, **options)
    except InvalidStatus as refused:
        return refused.response.status_code, None
    except ssl.SSLCertVerificationError:
        return "untrusted", None
    except (InvalidHandshake, TimeoutError, ConnectionError, EOFError, OSError):
        return "dropped", None
    return 101, ws


async def _exchange(ws, text: str) -> tuple[str, object]:
    """Send one text frame; return ("reply", data), ("closed", code) or ("silent", None)."""
    try:
        await ws.send(text)
        return "reply", await asyncio.wait_for(ws.recv(), REPLY_TIMEOUT)
    except ConnectionClosed as closed:
        return "closed", closed.rcvd.code if closed.rcvd else None
    except TimeoutError:
        return "silent", None


async def _frames(url: str, origin: str, frames: bool, tls) -> list[Finding]:
    out = []
    checks = [("json", json.dumps({"message": "doctor"}))]
    if frames:
        checks += [("plain", "not json"), ("nokey", json.dumps({"text": "doctor"}))]
    for kind, text in checks:
        status, ws = await _handshake(url, origin, tls)
        if ws is None:
            break
        async with ws:
            result, data = await _exchange(ws, text)
        if kind == "json" and result == "closed":
            out.append(Finding("consumer-raises", True,
                               f'{{"message": "doctor"}} closed the socket with code {data}: the consumer raised'))
        elif kind == "json" and result == "silent":
            out.append(Finding("no-reply", False, f'{{"message": "doctor"}} got no reply in {REPLY_TIMEOUT:.0f} s'))
        elif kind != "json" and result == "closed" and data == 1011:
            slug, sent = ("plain-text-frame", "a non-JSON frame") if kind == "plain" else (
                "missing-message-key", 'JSON without "message"')
            out.append(Finding(slug, True, f"{sent} made the consumer raise: the socket closed with code 1011"))
    return out


async def probe(url: str, frames: bool = False) -> list[Finding]:
    """Diagnose the server behind a ws:// URL from what it answers."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or (443 if parts.scheme == "wss" else 80)
    try:
        socket.create_connection((host, port), timeout=3).close()
    except OSError:
        return [Finding("not-listening", True, f"nothing listens on {host}:{port}")]
    page = "https" if parts.scheme == "wss" else "http"
    own = f"{page}://{parts.netloc}"
    local = f"{page}://localhost:{port}"
    out, tls = [], None
    with_origin, ws = await _handshake(url, own)
    if with_origin == "untrusted":
        # A diagnosis, not a login: note the certificate, then look past it.
        out.append(Finding("tls-untrusted", False, f"{host}:{port}'s certificate is not trusted (self-signed?)"))
        tls = ssl.create_default_context()
        tls.check_hostname, tls.verify_mode = False, ssl.CERT_NONE
        with_origin, ws = await _handshake(url, own, tls)
    if ws is not None:
        await ws.close()
    if with_origin == 101:
        # Only an accepted handshake tells anything by its twin without an Origin (a hang would cost 5 s more).
        without, ws = await _handshake(url, None, tls)
        if ws is not None:
            await ws.close()
        if without != 101:
            out.append(Finding("no-origin-header", False, f"a client without an Origin header gets HTTP {without}"))
        with_cookie, ws = await _handshake(url, own, tls, cookie=STALE_COOKIE)
        if ws is not None:
            await ws.close()
        if with_cookie == 500:
            out.append(Finding("no-session-table", True,
                               "a handshake that carries a sessionid cookie (as a browser brings from any earlier "
                               "Django project on this host) gets HTTP 500, one without gets in: the database was "
                               "never migrated? (the server log then says \"no such table: django_session\")"))
        return out + await _frames(url, own, frames, tls)
    if with_origin == 403 and host != "localhost":
        local_status, ws = await _handshake(url, local, tls)
        if ws is not None:
            await ws.close()
            return out + [Finding("origin-not-allowed", True,
                            f"the server refuses Origin {own} (HTTP 403) but accepts {local}")]
    if with_origin == 403 and await asyncio.to_thread(_has_login_page, own, tls):
        return out + [Finding("login-required", False,
                              f"{parts.path} refuses anonymous handshakes (HTTP 403), and the site has Django's login "
                              "page: the consumer admits logged-in users only, as step 9's does")]
    return out + [_refusal(with_origin, url)]


def _has_login_page(site: str, tls: ssl.SSLContext | None) -> bool:
    """Tell whether `site` serves Django's login form at /accounts/login/."""
    import urllib.request

    try:
        with urllib.request.urlopen(site + "/accounts/login/", timeout=3, context=tls) as response:
            return response.status == 200 and b"csrfmiddlewaretoken" in response.read()
    except (OSError, ValueError):
        return False


def _refusal(status, url: str) -> Finding:
    path = urlsplit(url).path
    if status == 404:
        return Finding("no-daphne-app", True,
                       f"{path} answered HTTP 404: a WSGI server (runserver without 'daphne' in INSTALLED_APPS?)")
    if status == 500:
        return Finding("handshake-500", True,
                       f"the application raised on the handshake to {path} (HTTP 500); the server log says which: "
                       "\"No route found for path\" [path-mismatch], \"No application configured for scope type "
                       "'websocket'\" [no-websocket-route], \"can't be used in 'await' expression\" [no-as-asgi]")
    if status == 403:
        return Finding("handshake-403", True,
                       f"{path} refused the handshake (HTTP 403) whatever the Origin: the consumer closed in "
                       "connect(), or a validator/middleware refuses these origins")
    if status == "dropped":
        return Finding("never-accepts", True,
                       f"{path} took the connection but never completed the handshake: connect() never calls "
                       "self.accept() (daphne drops it after 5 s)")
    return Finding("unexpected-status", True, f"{path} answered the handshake with HTTP {status}")
