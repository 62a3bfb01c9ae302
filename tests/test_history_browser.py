"""Step 10's page in a real headless Chromium: a page that joins late shows the room's history first, as text."""

from __future__ import annotations

import json
import secrets

import pytest
from websockets.sync.client import connect

from workbook import browser as chat_browser
from workbook import get_step
from workbook.login import cookie_header, login
from workbook.servers.server import TIMEOUT
from workbook.users import create_demo_users

HISTORY = get_step(10)
BOB = ("bob", "bob-password")
# Text that would run or render if a page used innerHTML; shown as text it is just these characters.
HOSTILE = '<img src=x onerror="window.ran = true"><b>bold</b>'

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def step10(shared_server):
    create_demo_users(HISTORY.path)
    return shared_server(HISTORY)


def alice_says(server, room: str, messages: list[str]) -> None:
    """alice, from a Python client, sends each message and waits for its echo: saved before the page joins."""
    # The sync client: Playwright's sync API already runs an event loop in this thread.
    headers = {"Origin": server.http_url.rstrip("/"),
               **cookie_header(login(server.http_url, "alice", "alice-password"))}
    with connect(server.ws_url(f"/ws/chat/{room}/"), additional_headers=headers) as ws:
        for text in messages:
            ws.send(json.dumps({"message": text}))
            ws.recv(TIMEOUT)


def test_a_page_that_joins_later_shows_the_history_first_and_as_text(step10, chromium):
    """bob's page, opened after alice spoke, lists her messages oldest first; markup in them never renders."""
    room = f"b-{secrets.token_hex(6)}"
    alice_says(step10, room, ["before you came", HOSTILE])
    page = chat_browser.open_page(chromium, f"{step10.http_url}?room={room}", login=BOB)
    try:
        assert chat_browser.wait_received(page, 2) == ["<<< alice: before you came", f"<<< alice: {HOSTILE}"]
        assert page.locator("#log img, #log b").count() == 0
        assert page.evaluate("window.ran === undefined")
        chat_browser.send_from_form(page, "hi alice")
        assert chat_browser.wait_received(page, 3)[-1] == "<<< bob: hi alice"
    finally:
        page.context.close()


def test_the_screenshot_scene_shows_bob_catching_up_in_a_copy_with_its_own_database(chromium, serve):
    """`make screenshots` shoots step 10 from a fresh copy: alice's two lines replayed to bob, then his answer."""
    from workbook.browser import late_joiner
    from workbook.history_scene import fresh_copy, replays_history

    assert replays_history(HISTORY.path) and not replays_history(get_step(9).path)
    with fresh_copy(HISTORY.path) as project:
        assert not (project / "db.sqlite3").exists()
        create_demo_users(project)
        page = late_joiner(chromium, serve(project).http_url)
        try:
            assert page.locator("#log li.received").all_inner_texts() == [
                "<<< alice: hello, channels", "<<< alice: sent from the devtools console",
                "<<< bob: hi alice, I just caught up",
            ]
        finally:
            page.context.close()
    assert not project.exists()
