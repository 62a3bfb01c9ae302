"""Every stage behaves as its STEP.md says, against the real server a learner would run."""

from __future__ import annotations

import json
import sys
import urllib.request

import pytest
from conftest import HOWS, steps

from workbook import client, get_step
from workbook.communicator import drive

MIDDLEWARE_KEYS = ("'cookies'", "'session'", "'user'", "'url_route'", "'path_remaining'")


@pytest.fixture(params=HOWS)
def how(request) -> str:
    """Each real-server test runs under `manage.py runserver` and under the `daphne` CLI."""
    return request.param


def get(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status, response.read().decode()


@pytest.mark.parametrize("step", steps())
def test_the_page_names_its_stage(step, how, shared_server):
    """`/` answers 200 with a page that says which stage this is."""
    server = shared_server(step, how)
    status, body = get(server.http_url)
    assert status == 200
    assert f"Step {step.number:02d} · {step.title}" in body


@pytest.mark.parametrize("step", steps(1))
def test_runserver_is_daphne_once_daphne_is_installed(step, shared_server):
    """With daphne first in INSTALLED_APPS, runserver starts the ASGI/Daphne server."""
    server = shared_server(step, "runserver")
    server.wait_for_log(r"Starting ASGI/Daphne version [\d.]+ development server")
    assert "Starting development server" not in server.log_text()


@pytest.mark.parametrize("step", steps(1, 2, 3))
async def test_websocket_is_refused_before_routing(step, how, shared_server):
    """A websocket to /ws/chat/ gets HTTP 500: ProtocolTypeRouter has no "websocket" entry yet."""
    server = shared_server(step, how)
    before = len(server.log_text())
    # daphne hands the handshake to ProtocolTypeRouter, which raises for an unknown scope type;
    # daphne turns that exception into a 500 answer to the upgrade request.
    assert await client.handshake_status(server.ws_url(), quiet=True) == 500
    server.wait_for_log(r"No application configured for scope type 'websocket'", after=before)


@pytest.mark.parametrize("step", steps(2, 3, 4, 5))
def test_consumer_echoes_in_process(step):
    """Driven by WebsocketCommunicator, ChatConsumer accepts and echoes {"message": ...}."""
    report = drive(step, [json.dumps({"message": "hello"}), json.dumps({"message": "again"})])
    assert report["connected"] is True
    assert report["error"] is None
    assert [json.loads(reply) for reply in report["replies"]] == [{"message": "hello"}, {"message": "again"}]


def test_step_02_consumer_prints_its_events_but_not_the_scope():
    """Step 02's connect and disconnect each print one line, and no scope."""
    report = drive(get_step(2), [])
    assert report["printed"].splitlines() == ["a client connected", "a client disconnected, close code 1000"]


@pytest.mark.parametrize("step", steps(3, 4, 5))
def test_connect_prints_the_scope(step):
    """From step 03 on, connect prints the scope: its type, path and headers."""
    printed = drive(step, [])["printed"]
    assert "'type': 'websocket'" in printed
    assert "'path': '/ws/chat/'" in printed
    assert "'headers': [(b'host', b'localhost')" in printed


@pytest.mark.parametrize("step", steps(4, 5))
async def test_a_real_client_gets_its_message_echoed(step, how, shared_server):
    """A websockets client at ws://HOST:PORT/ws/chat/ gets {"message": ...} back."""
    server = shared_server(step, how)
    assert await client.echo(server.ws_url(), "hello, channels", quiet=True) == {"message": "hello, channels"}


@pytest.mark.parametrize("step", steps(4, 5))
async def test_the_routed_scope_holds_what_the_middleware_adds(step, how, shared_server):
    """AuthMiddlewareStack adds cookies, session and user; URLRouter adds url_route and path_remaining."""
    server = shared_server(step, how)
    before = len(server.log_text())
    await client.echo(server.ws_url(), quiet=True)
    printed = server.wait_for_log(r"a client connected, with this scope:\n(\{.*?\})\n", after=before).group(1)
    for key in ("'type': 'websocket'", "'path': '/ws/chat/'", "'headers'", *MIDDLEWARE_KEYS):
        assert key in printed
    assert "'url_route': {'args': (), 'kwargs': {}}" in printed


@pytest.mark.parametrize("step", steps(4, 5))
@pytest.mark.parametrize(
    "frame",
    [
        pytest.param("not json", id="non-json"),
        pytest.param(json.dumps({"text": "no message key"}), id="missing-message"),
        pytest.param(b"\x00binary", id="binary-frame"),
    ],
)
async def test_the_articles_consumer_closes_with_1011_on_bad_input(step, frame, shared_server):
    """As in the article, bad input raises in receive() and the server closes the socket with 1011."""
    server = shared_server(step, "runserver")
    async with await client.open_socket(server.ws_url(), quiet=True) as ws:
        await client.send_text(ws, frame, quiet=True)
        assert await client.wait_closed(ws, quiet=True) == 1011
    # The server itself survives: the next client is echoed as before.
    assert await client.echo(server.ws_url(), "still here", quiet=True) == {"message": "still here"}


@pytest.mark.parametrize("step", steps(4, 5))
async def test_an_unrouted_websocket_path_gets_500_not_404(step, how, shared_server):
    """URLRouter raises for a path it does not know, and daphne answers 500 (not 404)."""
    server = shared_server(step, how)
    before = len(server.log_text())
    assert await client.handshake_status(server.ws_url("/ws/elsewhere/"), quiet=True) == 500
    server.wait_for_log(r"No route found for path 'ws/elsewhere/'", after=before)


@pytest.mark.parametrize("step", steps(5))
def test_the_page_carries_the_javascript_client(step, how, shared_server):
    """Step 05's page opens ws:// or wss:// + location.host + /ws/chat/ as a global chatSocket."""
    server = shared_server(step, how)
    _, body = get(server.http_url)
    assert "location.protocol === 'https:' ? 'wss://' : 'ws://'" in body
    assert "const chatSocket = new WebSocket(wsScheme + location.host + '/ws/chat/');" in body
    assert 'id="chat-form"' in body and 'id="state"' in body


def test_stage_servers_run_the_python_of_the_test_session():
    """The runner serves a step with the session's own interpreter, so `make test-latest` serves on its releases."""
    from workbook import Server

    assert Server(get_step(4)).command()[0] == sys.executable
