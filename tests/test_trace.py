"""The trace: `run --trace` prints every websocket message a step's application receives and sends."""

from __future__ import annotations

import json
import secrets
import shutil
import sys
import time

import pytest
from conftest import HOWS, STARTED_GROUPS, steps
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from workbook import Server, get_step
from workbook.learner import workspace as learner
from workbook.login import cookie_header, login
from workbook.servers.server import TIMEOUT, free_port
from workbook.servers.trace import Event, format_line, parse
from workbook.users import create_demo_users

HI = json.dumps({"message": "hi"})
DAPHNE_1011 = " (daphne closes the socket with 1011)"


@pytest.fixture(scope="module", params=HOWS)
def traced(request):
    """Step 04 served through the trace, once per server kind for the whole module."""
    server = Server(get_step(4), how=request.param, trace=True)
    server.files_before = files_of(server.project)
    server.start()
    STARTED_GROUPS.append(server.pid)
    yield server
    server.stop()


def files_of(folder) -> dict[str, tuple[int, int] | None]:
    """Each file's size and modification time; for the database, only that it is there.

    Other tests serve the same step meanwhile, and a server of another Python migrates its database (a stamp per
    interpreter): the database's time, and a journal that a write leaves beside it for a moment, say nothing about
    the trace.
    """
    return {str(p.relative_to(folder)): None if p.name == "db.sqlite3" else (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file() and not p.name.startswith("db.sqlite3-")}


def wait_for_events(log_text, count: int, offset: int = 0) -> list[Event]:
    """Poll a server's output until it holds `count` trace lines after `offset`; return them."""
    deadline = time.monotonic() + TIMEOUT
    while True:
        events = parse(log_text()[offset:])
        if len(events) >= count or time.monotonic() > deadline:
            return events
        time.sleep(0.05)


def wait_for_connections(log_text, count: int, offset: int) -> dict[str, list[tuple[str, str, str]]]:
    """Poll a server's output until `count` connections opened after `offset` have ended; return their events.

    A connection ends with the disconnect it receives or the exception it raises. Lines of a connection opened
    before `offset` (daphne may log an earlier test's disconnect late) are left out, never counted.
    """
    deadline = time.monotonic() + TIMEOUT
    while True:
        opened = {name: events for name, events in by_connection(parse(log_text()[offset:])).items()
                  if events[0][1] == "websocket.connect"}
        ended = [events for events in opened.values()
                 if events[-1][0] == "raised" or events[-1][1] == "websocket.disconnect"]
        if len(ended) >= count or time.monotonic() > deadline:
            return opened
        time.sleep(0.05)


def by_connection(events: list[Event]) -> dict[str, list[tuple[str, str, str]]]:
    grouped: dict[str, list[tuple[str, str, str]]] = {}
    for event in events:
        grouped.setdefault(event.connection, []).append((event.direction, event.type, event.detail))
    return grouped


def origin(server: Server) -> str:
    return server.http_url.rstrip("/")


async def test_a_conversation_shows_every_event_in_order_one_tag_per_connection(traced):
    """An echo, a clean close and a bad frame that closes 1011 show up as exactly their events, per connection."""
    offset = len(traced.log_text())
    async with connect(traced.ws_url(), origin=origin(traced)) as ws:
        await ws.send(HI)
        assert json.loads(await ws.recv()) == {"message": "hi"}
    async with connect(traced.ws_url(), origin=origin(traced)) as ws:
        await ws.send("not json")
        with pytest.raises(ConnectionClosed):
            await ws.recv()
        assert ws.close_code == 1011
    first, second = wait_for_connections(traced.log_text, 2, offset).values()
    assert first == [
        ("received", "websocket.connect", "(path /ws/chat/)"),
        ("sent", "websocket.accept", ""),
        ("received", "websocket.receive", f"text={HI!r}"),
        ("sent", "websocket.send", f"text={HI!r}"),
        ("received", "websocket.disconnect", "code=1000"),
    ]
    assert second == [
        ("received", "websocket.connect", "(path /ws/chat/)"),
        ("sent", "websocket.accept", ""),
        ("received", "websocket.receive", "text='not json'"),
        ("raised", "JSONDecodeError", "Expecting value: line 1 column 1 (char 0)" + DAPHNE_1011),
    ]


async def test_a_long_text_is_shortened_and_a_binary_frame_shows_its_size(traced):
    """A 500-character message shows its start and its length; a binary frame shows only its byte count."""
    offset = len(traced.log_text())
    long = json.dumps({"message": "x" * 500})
    async with connect(traced.ws_url(), origin=origin(traced)) as ws:
        await ws.send(long)
        await ws.recv()
        await ws.send(b"\x00\x01\x02\x03\x04")
        with pytest.raises(ConnectionClosed):
            await ws.recv()
    [events] = wait_for_connections(traced.log_text, 1, offset).values()
    texts = [detail for _, kind, detail in events if kind in ("websocket.receive", "websocket.send")]
    assert texts[0] == texts[1] == f"text='{{\"message\": \"{'x' * 35}'… ({len(long)} characters)"
    assert texts[2] == "bytes=<5 bytes>"
    frames = [line for line in traced.log_text()[offset:].splitlines() if "text='{" in line]
    assert len(frames) == 2 and max(map(len, frames)) < 110


async def test_tracing_leaves_the_steps_files_as_they_were(traced):
    """Serving step 04 through the trace, and talking to it, writes nothing into the step's directory."""
    async with connect(traced.ws_url(), origin=origin(traced)) as ws:
        await ws.send(HI)
        await ws.recv()
    traced.wait_for_log(r"a client disconnected, close code 1000")
    assert files_of(traced.project) == traced.files_before


# The session's shared servers of step 4 (the step parameter puts the test on the worker of step 4's tests).
@pytest.mark.parametrize("how", HOWS)
@pytest.mark.parametrize("step", steps(4))
async def test_without_trace_the_server_prints_no_event(shared_server, step, how):
    """The same conversation with a server started without --trace leaves no trace line in its output."""
    server = shared_server(step, how)
    async with connect(server.ws_url(), origin=origin(server)) as ws:
        await ws.send(HI)
        assert json.loads(await ws.recv()) == {"message": "hi"}
    server.wait_for_log(r"a client disconnected, close code 1000")
    assert parse(server.log_text()) == []


async def test_an_unrouted_step_shows_its_router_raising_before_any_event(serve):
    """Step 02 has no websocket route: the trace shows ProtocolTypeRouter's error and the HTTP 500 that follows."""
    server = serve(get_step(2), trace=True)
    with pytest.raises(InvalidStatus) as refused:
        async with connect(server.ws_url(), origin=origin(server)):
            pass
    assert refused.value.response.status_code == 500
    assert wait_for_events(server.log_text, 1) == [Event(
        "ws#1", "raised", "ValueError",
        "No application configured for scope type 'websocket' (daphne answers the handshake with HTTP 500)",
    )]


async def test_final_shows_a_foreign_origin_refused_and_a_binary_frame_answered(serve):
    """Under the daphne CLI, final's validator closes before accepting, and its consumer answers a binary frame."""
    create_demo_users(get_step("final").path)
    server = serve(get_step("final"), how="daphne", trace=True)
    # A room no run has used: a room with history would send it before the error frame.
    room, session = f"/ws/chat/trace-{secrets.token_hex(4)}/", login(server.http_url, "alice", "alice-password")
    with pytest.raises(InvalidStatus):
        async with connect(server.ws_url(room), origin="http://elsewhere.test"):
            pass
    async with connect(server.ws_url(room), origin=origin(server), additional_headers=cookie_header(session)) as ws:
        await ws.send(b"12345")
        assert "error" in json.loads(await ws.recv())
    events = by_connection(wait_for_events(server.log_text, 8))
    assert events["ws#1"][:2] == [
        ("received", "websocket.connect", f"(path {room})"),
        ("sent", "websocket.close", "before accept: the handshake is refused with HTTP 403"),
    ]
    assert events["ws#2"][1:4] == [
        ("sent", "websocket.accept", ""),
        ("received", "websocket.receive", "bytes=<5 bytes>"),
        ("sent", "websocket.send", events["ws#2"][3][2]),
    ]
    assert events["ws#2"][3][2].startswith("text='{\"error\": ")


def test_parse_reads_back_the_plain_ascii_lines_too():
    """A terminal that cannot show arrows gets `->` lines, and parse reads both forms alike."""
    unicode = format_line("ws#3", "sent", "websocket.send", "text='hi'")
    assert unicode == "ws#3 app →  websocket.send        text='hi'"
    ascii_line = unicode.replace("→", "->")
    noise = "WebSocket CONNECT /ws/chat/ [127.0.0.1:5000]\n"
    assert parse(noise + unicode + "\n" + ascii_line) == [Event("ws#3", "sent", "websocket.send", "text='hi'")] * 2
    assert str(parse(unicode)[0]) == unicode


def test_a_trace_line_glued_to_half_a_print_of_the_consumer_is_still_read():
    """A print() from the consumer's thread, cut by a trace line written in between, hides no event (seen in CI)."""
    log = ("a client disconnected, close codews#2 → app  websocket.connect     (path /ws/chat/)\n"
           " 1000\nws#2 app →  websocket.accept\n")
    assert [(event.connection, event.type) for event in parse(log)] == [
        ("ws#2", "websocket.connect"), ("ws#2", "websocket.accept")]


async def talk_when_up(process, port: int) -> None:
    """Wait until the foreground run says it is up, then echo once."""
    deadline = time.monotonic() + TIMEOUT
    while "is up on" not in process.output():
        assert process.poll() is None, process.output()
        assert time.monotonic() < deadline, process.output()
        time.sleep(0.05)
    async with connect(f"ws://127.0.0.1:{port}/ws/chat/", origin=f"http://127.0.0.1:{port}") as ws:
        await ws.send(HI)
        await ws.recv()


ECHO = [
    ("received", "websocket.connect", "(path /ws/chat/)"),
    ("sent", "websocket.accept", ""),
    ("received", "websocket.receive", f"text={HI!r}"),
    ("sent", "websocket.send", f"text={HI!r}"),
    ("received", "websocket.disconnect", "code=1000"),
]


async def test_run_workspace_with_trace_prints_the_learners_events_live(foreground, tmp_path, monkeypatch):
    """`python -m workbook run workspace --trace` shows the events of the learner's own project on its output."""
    monkeypatch.setenv("WORKBOOK_WORKSPACE", str(tmp_path / "workspace"))
    learner.start(5)  # the workspace holds step 04's project, where step 5 begins
    port = free_port()
    process = foreground([sys.executable, "-m", "workbook", "run", "workspace", "--port", str(port), "--trace"],
                         {"WORKBOOK_WORKSPACE": str(tmp_path / "workspace"), "MAKELEVEL": ""})
    await talk_when_up(process, port)
    assert list(by_connection(wait_for_events(process.output, 5)).values()) == [ECHO]
    assert "`→ app` the application receives" in process.output()


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed (use python -m workbook run 4 --trace)")
async def test_make_step_4_run_trace_1_prints_each_event_as_it_happens(foreground):
    """`make step-4 run TRACE=1` prints the conversation's events in the terminal while the server runs."""
    port = free_port()
    process = foreground(["make", "--no-print-directory", "step-4", "run", "TRACE=1"], {"PORT": str(port)})
    await talk_when_up(process, port)
    assert list(by_connection(wait_for_events(process.output, 5)).values()) == [ECHO]
