"""Step 09's page in a real headless Chromium: logged in, it names each sender; anonymous, it says why it is refused."""

from __future__ import annotations

import pytest
from conftest import Tabs

from workbook import browser as chat_browser
from workbook import get_step
from workbook.users import create_demo_users

USERS = get_step(9)
ALICE, BOB = ("alice", "alice-password"), ("bob", "bob-password")
# Text that would run or render if a page used innerHTML; shown as text it is just these characters.
HOSTILE = '<img src=x onerror="window.ran = true"><b>bold</b>'

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("server-09-users")]


@pytest.fixture(scope="module")
def step9(shared_server):
    create_demo_users(USERS.path)
    return shared_server(USERS)


@pytest.fixture(scope="module")
def contexts(chromium):
    """Tabs of one browser context per user (None: anonymous), each logged in once, through the form, on first use."""
    made: dict = {}
    yield made
    for tabs in made.values():
        tabs.context.close()


@pytest.fixture
def open_chat(chromium, contexts):
    """Open a chat page as `login` in a tab of that user's context and wait for its socket to open.

    Tabs are reused from test to test (a new tab costs Chromium a renderer process, a login a password hash): each
    load is a fresh document with its own socket. At teardown each tab goes to about:blank and is idle again.
    """
    used: list[Tabs] = []

    def open_page(url: str, login=None):
        first = login not in contexts
        if first:
            contexts[login] = Tabs(chromium.new_context(viewport=chat_browser.VIEWPORT))
        if contexts[login] not in used:
            used.append(contexts[login])
        return contexts[login](url, login=login if first else None)

    yield open_page
    for tabs in used:
        tabs.release()


def test_a_logged_in_page_names_its_user_and_shows_its_own_name_on_its_messages(step9, open_chat):
    """alice's page says who she is, and her message comes back as `<<< alice: …`."""
    page = open_chat(step9.http_url + "?room=browser-own", login=ALICE)
    assert page.locator("#username").inner_text() == "alice"
    chat_browser.send_from_form(page, "hello, I am alice")
    assert chat_browser.wait_received(page, 1) == ["<<< alice: hello, I am alice"]


def test_another_user_in_the_room_sees_the_senders_name_even_when_the_frame_claims_another(step9, open_chat):
    """A console frame from alice claiming "user": "bob" shows on bob's page under alice."""
    alice = open_chat(step9.http_url + "?room=browser-claim", login=ALICE)
    bob = open_chat(step9.http_url + "?room=browser-claim", login=BOB)
    chat_browser.send_from_console(alice, '{"message": "bob said this", "user": "bob"}')
    assert chat_browser.wait_received(bob, 1) == ["<<< alice: bob said this"]
    assert chat_browser.wait_received(alice, 1) == ["<<< alice: bob said this"]


def test_an_anonymous_page_says_the_socket_was_refused_and_its_login_link_leads_back_logged_in(step9, chromium):
    """Without a login the page shows the refusal and a link; logging in through it returns to an open socket."""
    context = chromium.new_context()
    try:
        page = context.new_page()
        page.goto(step9.http_url + "?room=kitchen")
        page.wait_for_selector('#state[data-state="closed"]')
        assert page.locator("#state").inner_text() == "refused"
        assert page.locator("#login-needed").inner_text().startswith("You are not logged in")
        refused = page.locator("#log li.refused")
        assert refused.inner_text().startswith("the server refused this socket")
        refused.locator("a.login-link").click()
        page.wait_for_selector("#id_username")
        page.fill("#id_username", ALICE[0])
        page.fill("#id_password", ALICE[1])
        page.click("button[type=submit]")
        page.wait_for_selector('#state[data-state="open"]')
        assert page.url == step9.http_url + "?room=kitchen"
        assert page.locator("#username").inner_text() == "alice"
    finally:
        context.close()


@pytest.mark.parametrize("number", [8, 9], ids=["08-async-json", "09-users"])
def test_a_message_holding_html_is_shown_as_text_never_run(number, shared_server, step9, open_chat):
    """`<img onerror>` and `<b>` sent to the room appear as their characters: no element is made, no script runs."""
    step = get_step(number)
    # step9 has made the demo users of step 9, the one step here whose page needs a login.
    login = ALICE if chat_browser.needs_login(step.path) else None
    page = open_chat(shared_server(step).http_url + "?room=browser-html", login=login)
    chat_browser.send_from_form(page, HOSTILE)
    [line] = chat_browser.wait_received(page, 1)
    assert line.endswith(HOSTILE)
    assert page.locator("#log img, #log b").count() == 0
    assert page.evaluate("window.ran === undefined")
