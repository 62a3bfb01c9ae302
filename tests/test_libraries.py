"""What the runner takes from libraries: trustme's certificate, pygments' diff colours, psutil's process tree."""

from __future__ import annotations

import os
import pty
import re
import socket
import ssl
import subprocess
import sys
import time

import psutil
import pytest
from conftest import STARTED_GROUPS

from workbook import Server, get_step
from workbook.diffs import colour, unified
from workbook.registry import ROOT
from workbook.servers.process import interrupt_guard
from workbook.servers.server import TIMEOUT, port_is_free

ANSI = re.compile(r"\x1b\[[0-9;]*m")


def handshake(port: int, name: str, context: ssl.SSLContext) -> str:
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as raw:
        with context.wrap_socket(raw, server_hostname=name) as tls:
            return tls.version()


def test_the_https_server_certificate_verifies_against_its_own_throwaway_ca():
    """A client trusting the run's ca.pem verifies the https server as 127.0.0.1 and localhost; others refuse it."""
    from workbook.servers.https import HttpsServer

    server = HttpsServer(get_step(5).path)
    try:
        server.start()
        STARTED_GROUPS.append(server.pid)
        trusting = ssl.create_default_context(cafile=str(server.ca))
        assert handshake(server.port, "127.0.0.1", trusting).startswith("TLS")
        assert handshake(server.port, "localhost", trusting).startswith("TLS")
        with pytest.raises(ssl.SSLCertVerificationError):
            handshake(server.port, "127.0.0.1", ssl.create_default_context())
    finally:
        server.stop()
    assert not server.tls_dir.exists()


def test_a_coloured_diff_is_the_plain_diff_with_colour_added():
    """Colouring marks additions green and removals red, and changes nothing else in the text."""
    plain = unified(get_step(3), get_step(4))
    coloured = unified(get_step(3), get_step(4), color=True)
    assert ANSI.sub("", coloured) == plain
    assert re.search(r"\x1b\[32m\+\s", coloured) and re.search(r"\x1b\[(91|31)m-", coloured)
    assert re.search(r"\x1b\[[0-9;]*m@@ ", coloured)


def test_pitfall_show_colours_its_patch_on_a_terminal_the_way_diff_does():
    """On a terminal, `pitfall show` prints its patch coloured by the same colouring as `workbook diff`."""
    main, tty = pty.openpty()
    process = subprocess.Popen([sys.executable, "-m", "workbook", "pitfall", "show", "no-as-asgi"], cwd=ROOT,
                               stdin=subprocess.DEVNULL, stdout=tty, stderr=subprocess.STDOUT)
    os.close(tty)
    chunks = []
    while True:
        try:
            chunk = os.read(main, 65536)
        except OSError:  # the terminal closes with the last writer
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(main)
    assert process.wait(TIMEOUT) == 0
    shown = b"".join(chunks).decode().replace("\r\n", "\n")
    patch = (ROOT / "pitfalls" / "no-as-asgi.patch").read_text(encoding="utf-8")
    assert colour(patch) in shown


def test_the_guard_leaves_only_after_its_whole_server_tree_has_gone():
    """When the guard exits after a stop, the runserver it started (reloader on) has already ended: the port is free."""
    server = Server(get_step(4), reload=True).start()
    STARTED_GROUPS.append(server.pid)
    guard = psutil.Process(server.pid)
    deadline = time.monotonic() + TIMEOUT
    while not (tree := guard.children(recursive=True)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert tree, "the guard should have started runserver"
    interrupt_guard(server.pid)
    server.process.wait(TIMEOUT)
    running = [p for p in tree if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert running == []
    assert port_is_free(server.port)
    server.stop()
