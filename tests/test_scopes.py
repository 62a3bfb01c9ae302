"""The notebooks' readers of server output: printed scopes split into keys, folded tracebacks and scopes."""

from __future__ import annotations

from pathlib import Path
from pprint import pformat

from workbook.scopes import compare, last_scope, scope_keys
from workbook.servers.logs import fold_scopes, fold_tracebacks

# Shaped like what daphne hands a routed consumer: nested dicts, a header list long enough to wrap.
ROUTED = {
    "type": "websocket",
    "path": "/ws/chat/",
    "headers": [(b"host", b"127.0.0.1:8000"), (b"sec-websocket-extensions", b"permessage-deflate; " * 4)],
    "url_route": {"args": (), "kwargs": {"room_name": "kitchen"}},
    "path_remaining": "",
    "cookies": {},
    "client": ["127.0.0.1", 50000],
}
BARE = {"type": "websocket", "path": "/ws/chat/", "headers": [(b"host", b"localhost")]}


def test_a_printed_scope_splits_into_its_top_level_keys_only():
    """Nested keys such as url_route's kwargs stay inside their top-level value."""
    keys = scope_keys(pformat(ROUTED))
    assert sorted(keys) == sorted(ROUTED)
    assert keys["url_route"] == "{'args': (), 'kwargs': {'room_name': 'kitchen'}}"
    assert keys["path"] == "'/ws/chat/'"
    assert sorted(scope_keys(pformat(BARE))) == sorted(BARE), "a scope short enough for one line splits the same way"


def test_the_last_scope_is_found_among_other_log_lines():
    """Around handshake lines and a second connection, the last scope printed is the one returned."""
    log = f"WebSocket HANDSHAKING /ws/chat/\n{pformat(BARE)}\nWebSocket CONNECT\n{pformat(ROUTED)}\nDISCONNECT\n"
    assert last_scope(log) == pformat(ROUTED)
    assert last_scope("no scope here\n") is None


def test_the_comparison_puts_routing_and_middleware_keys_after_the_shared_ones():
    """Keys both scopes have come first; url_route, path_remaining and cookies are marked with who adds them."""
    table = compare(pformat(BARE), pformat(ROUTED), "03", "04")
    rows = table.rows()
    assert [row[0] for row in rows[:3]] == ["headers", "path", "type"]
    added_by = {row[0]: row[3] for row in rows}
    assert "URLRouter" in added_by["url_route"] and "URLRouter" in added_by["path_remaining"]
    assert "AuthMiddlewareStack" in added_by["cookies"]
    assert "daphne" in added_by["client"]
    assert added_by["path"] == ""
    assert "<table>" in table._repr_html_() and "url_route" in str(table)


def test_a_traceback_keeps_the_projects_frames_and_the_exception():
    """Library frames become a count; the project's own frame and the exception line stay."""
    project = Path("/work/steps/04-routing")
    log = (
        "Exception inside application: Expecting value\n"
        "Traceback (most recent call last):\n"
        '  File "/venv/channels/routing.py", line 48, in __call__\n'
        "    return await application(scope, receive, send)\n"
        '  File "/work/steps/04-routing/chat/consumers.py", line 18, in receive\n'
        "    text_data_json = json.loads(text_data)\n"
        '  File "/usr/lib/python3.11/json/__init__.py", line 346, in loads\n'
        "    return _default_decoder.decode(s)\n"
        "json.decoder.JSONDecodeError: Expecting value: line 1 column 1 (char 0)\n"
        "WebSocket DISCONNECT /ws/chat/\n"
    )
    folded = fold_tracebacks(log, project).splitlines()
    assert folded == [
        "Exception inside application: Expecting value",
        "Traceback (most recent call last):",
        "  … 1 frames in Django, Channels and asgiref …",
        '  File "/work/steps/04-routing/chat/consumers.py", line 18, in receive',
        "    text_data_json = json.loads(text_data)",
        "  … 1 frames in Django, Channels and asgiref …",
        "json.decoder.JSONDecodeError: Expecting value: line 1 column 1 (char 0)",
        "WebSocket DISCONNECT /ws/chat/",
    ]


def test_a_scope_printed_again_is_folded_to_one_line():
    """The first scope stays whole; the next ones become one line with their key count."""
    log = f"{pformat(ROUTED)}\nCONNECT\n{pformat(ROUTED)}\n"
    text, seen = fold_scopes(log)
    assert seen and text.count("'url_route'") == 1
    assert f"{{… a scope with {len(ROUTED)} keys, as above …}}" in text
    again, _ = fold_scopes(pformat(ROUTED), seen=True)
    assert "'url_route'" not in again
