"""Every stage behaves as its STEP.md says, against the real server a learner would run.

The learner's checks (workbook/checks*.py, `python -m workbook check`) are each stage's specification: every check
of a step runs here against the step's snapshot, served by runserver and by the daphne CLI. The other tests hold
only what no check covers (the snapshot's own texts, exact status codes, bad input).
"""

from __future__ import annotations

import json
import sys
import urllib.request

import pytest
from conftest import HOWS, STEPS, need, steps

from workbook import client, get_step
from workbook.communicator import drive
from workbook.learner import checks
from workbook.learner.check_base import Run, Unavailable
from workbook.users import create_demo_users

# Checks that start a Redis, or run the learner's tests (whose live-server test drives a browser).
# (Imported as a module: a name like `tests_pass` in this namespace would be collected as a test.)
LEARNERS_TESTS = (checks.tests_pass, checks.browser_test_runs, checks.catches_drops_user, checks.catches_leaky_rooms,
                  checks.catches_no_history)
MARKS = {checks.redis_shares_rooms: [pytest.mark.redis], **dict.fromkeys(LEARNERS_TESTS, [pytest.mark.browser])}
# Each check of each step, once per server it talks to (once, on no server, for an in-process check).
CHECKS = [
    pytest.param(step, func, how, id=f"{step.id}-{func.__name__}" + (f"-{how}" if func.served else ""),
                 marks=MARKS.get(func, []))
    for step in STEPS for func in checks.checks_for(step) for how in (func.served or [None])
]


@pytest.fixture(params=HOWS)
def how(request) -> str:
    """Each real-server test runs under `manage.py runserver` and under the `daphne` CLI."""
    return request.param


@pytest.fixture(scope="module")
def check_runs(shared_server):
    """Return the checks' Run for (step, how) on the shared server, made once, so facts and drives load once."""
    runs: dict[tuple[int, str], Run] = {}

    def get(step, how: str) -> Run:
        if (step.number, how) not in runs:
            if step.number in (9, 10):
                create_demo_users(step.path)  # the users the checks log in as, as `make step-9 users` makes them
            runs[step.number, how] = Run(step.path, label=f"{step.id}-check", server=shared_server(step, how))
        return runs[step.number, how]

    yield get
    for run in runs.values():
        run.close()


@pytest.mark.parametrize(("step", "check", "how"), CHECKS)
def test_each_check_of_the_step_passes_against_its_snapshot(step, check, how, check_runs):
    """The learner's check holds for the step's snapshot, served by runserver and by the daphne CLI."""
    try:
        check(check_runs(step, how or "runserver"))
    except Unavailable as why:
        need(False, "a check's tool", str(why))


def get(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status, response.read().decode()


@pytest.mark.parametrize("step", steps())
def test_the_page_names_its_stage(step, how, shared_server):
    """The page says which stage this is (the check page_answers covers its 200)."""
    server = shared_server(step, how)
    _, body = get(server.http_url)
    assert f"Step {step.number:02d} · {step.title}" in body



@pytest.mark.parametrize("step", steps(1, 2, 3))
async def test_websocket_is_refused_before_routing(step, how, shared_server):
    """A websocket to /ws/chat/ gets HTTP 500: ProtocolTypeRouter has no "websocket" entry yet."""
    server = shared_server(step, how)
    before = len(server.log_text())
    # daphne hands the handshake to ProtocolTypeRouter, which raises for an unknown scope type;
    # daphne turns that exception into a 500 answer to the upgrade request.
    assert await client.handshake_status(server.ws_url(), quiet=True) == 500
    server.wait_for_log(r"No application configured for scope type 'websocket'", after=before)



def test_step_02_consumer_prints_its_events_but_not_the_scope():
    """Step 02's connect and disconnect each print one line, and no scope."""
    report = drive(get_step(2), [])
    assert report["printed"].splitlines() == ["a client connected", "a client disconnected, close code 1000"]





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
    """Step 05's page keeps its socket in a global chatSocket, and the ids the browser tests use."""
    server = shared_server(step, how)
    _, body = get(server.http_url)
    assert "const chatSocket = new WebSocket(wsScheme + location.host + '/ws/chat/');" in body
    assert 'id="chat-form"' in body and 'id="state"' in body


def test_stage_servers_run_the_python_of_the_test_session():
    """The runner serves a step with the session's own interpreter, so `make test-latest` serves on its releases."""
    from workbook import Server

    assert Server(get_step(4)).command()[0] == sys.executable
