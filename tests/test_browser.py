"""Every chat page works in a real headless Chromium against the real server a learner runs."""

from __future__ import annotations

import os
import re
import secrets
import sys
import time
from pathlib import Path

import pytest
from conftest import SESSION_BROWSER, Tabs, run_python

from workbook import browser as chat_browser
from workbook import load_steps
from workbook.registry import ROOT
from workbook.servers.server import TIMEOUT, free_port

# Pages that refuse anonymous sockets (step 9 on) have their own browser tests, logged in, in test_users_browser.py.
CHAT_PAGES = [(name, project) for name, project in chat_browser.pages() if not chat_browser.needs_login(project)]
PAGES = [pytest.param(project, id=name) for name, project in CHAT_PAGES]
# Pages from the groups step on pick a room from the address (/?room=kitchen); earlier ones only echo.
HAS_ROOMS = {
    name: 'id="room-input"' in (project / "templates" / "index.html").read_text(encoding="utf-8")
    for name, project in CHAT_PAGES
}
ROOM_PAGES = [pytest.param(project, id=name) for name, project in CHAT_PAGES if HAS_ROOMS[name]]
ECHO_PAGES = [pytest.param(project, id=name) for name, project in CHAT_PAGES if not HAS_ROOMS[name]]
# The steps keep the article's consumer, which raises on bad input; final/ is hardened and answers differently.
ARTICLE_PAGES = [pytest.param(project, id=name) for name, project in CHAT_PAGES if name != "final"]
# final/ is hardened and answers differently; from step 09 on a page needs a login, so it is opened logged in.
HARDENED_PAGES = [pytest.param(project, id=name) for name, project in chat_browser.pages() if name == "final"]
CLOSED_LINE = re.compile(r"socket closed with code (\d{4}): (.+)")


def browser_processes() -> list[str]:
    """Describe the Chromium and Playwright driver processes descended from this test run (Linux only)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            pid, rest = stat.read_text().split(" ", 1)
            parent = int(rest.rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(parent, []).append(int(pid))
    # The worker's shared browser (conftest's chromium fixture) lives on until the session ends, by design.
    found, todo = [], [pid for pid in children.get(os.getpid(), []) if pid not in SESSION_BROWSER]
    while todo:
        pid = todo.pop()
        todo.extend(children.get(pid, []))
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        if re.search(r"chrom|headless_shell|msedge", Path(argv[0]).name) or "run-driver" in argv:
            found.append(f"{pid}: {' '.join(argv)[:100]}")
    return found


@pytest.fixture(scope="module", autouse=True)
def no_browser_left_behind():
    """After this module, no browser or Playwright driver it started is still running."""
    yield
    if not sys.platform.startswith("linux"):
        return
    deadline = time.monotonic() + TIMEOUT
    while browser_processes() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not browser_processes(), "browser processes left running:\n" + "\n".join(browser_processes())


@pytest.fixture(scope="module")
def tabs(chromium):
    context = chromium.new_context(viewport=chat_browser.VIEWPORT)
    yield Tabs(context)
    context.close()


@pytest.fixture
def open_chat(tabs):
    """Open a chat page in a tab and wait for its socket to open (`open_chat.tab()`: a bare tab); tabs are freed
    at teardown."""
    yield tabs
    tabs.release()


def log_lines(page, kind: str) -> list[str]:
    return page.locator(f"#log li.{kind}").all_inner_texts()


def wait_closed(page) -> re.Match:
    """Wait for the page to show the closed state; return the match of its closed line."""
    page.wait_for_selector('#state[data-state="closed"]')
    lines = log_lines(page, "closed")
    assert len(lines) == 1, f"expected one closed line, the page shows {lines}"
    shown = CLOSED_LINE.fullmatch(lines[0])
    assert shown, f"the closed line does not name a code and a meaning: {lines[0]!r}"
    return shown


@pytest.mark.browser
@pytest.mark.parametrize("project", PAGES)
def test_the_page_connects_and_says_the_socket_is_open(project, shared_server, open_chat):
    """Loading the page opens chatSocket and the state line turns to open."""
    page = open_chat(shared_server(project).http_url)
    assert page.inner_text("#state") == "open"
    assert page.evaluate("chatSocket.readyState === WebSocket.OPEN")
    assert log_lines(page, "closed") == []


@pytest.mark.browser
@pytest.mark.parametrize("project", PAGES)
def test_a_page_served_over_http_opens_ws_to_the_chat_path(project, shared_server, open_chat):
    """Served over http://, the page opens ws://HOST:PORT/ws/chat/ on the host it came from."""
    server = shared_server(project)
    page = open_chat(server.http_url)
    assert page.evaluate("chatSocket.url") == server.ws_url("/ws/chat/")


@pytest.mark.browser
@pytest.mark.parametrize("project", PAGES)
def test_a_page_served_over_https_opens_wss(project, shared_server, open_chat):
    """Served over https://, the page opens wss:// to the host it came from, so the browser does not block it."""
    server = shared_server(project)
    # The dev server has no TLS: the browser gets the real page's bytes under an https:// address on a port
    # where nothing listens, so the wss:// socket fails at once and the page says so.
    https_host = f"127.0.0.1:{free_port()}"
    page = open_chat.tab()
    page.route(f"https://{https_host}/", lambda route: route.fulfill(response=route.fetch(url=server.http_url)))
    page.goto(f"https://{https_host}/")
    assert page.evaluate("chatSocket.url") == f"wss://{https_host}/ws/chat/"
    assert wait_closed(page).group(1) == "1006"


@pytest.mark.browser
@pytest.mark.parametrize("project", PAGES)
def test_a_message_sent_from_the_form_is_echoed_on_the_page(project, shared_server, open_chat):
    """Submitting the form shows the sent line, then the echo the server sends back."""
    page = open_chat(shared_server(project).http_url)
    chat_browser.send_from_form(page, "hello from the form")
    assert chat_browser.wait_received(page, 1) == ["<<< hello from the form"]
    assert log_lines(page, "sent") == [">>> hello from the form"]
    assert page.input_value("#message-input") == ""


# Pages held to showing every message as text: step 08 on, and final/ (issue 12; every page uses textContent).
TEXT_ONLY_PAGES = [pytest.param(project, id=name) for name, project in CHAT_PAGES if name >= "08"]
MARKUP = '<img src=x onerror="window.pwned = 1"><b>bold</b> & <script>window.pwned = 2</script>'


@pytest.mark.browser
@pytest.mark.parametrize("project", TEXT_ONLY_PAGES)
def test_a_message_holding_markup_is_shown_as_text_and_never_runs(project, shared_server, open_chat):
    """A message with tags and a script is shown character for character; no element is made, nothing runs."""
    page = open_chat(shared_server(project).http_url)
    page.evaluate("text => chatSocket.send(JSON.stringify({message: text}))", MARKUP)
    assert chat_browser.wait_received(page, 1) == [f"<<< {MARKUP}"]
    assert page.locator("#log img, #log b, #log script").count() == 0
    assert page.evaluate("window.pwned === undefined")


@pytest.mark.browser
@pytest.mark.parametrize("project", PAGES)
def test_a_console_send_on_chat_socket_is_echoed_on_the_page_and_in_the_console(project, shared_server, open_chat):
    """`chatSocket.send(...)` typed in the console gets its echo shown on the page and logged to the console."""
    page = open_chat(shared_server(project).http_url)
    console = []

    def listen(message):
        console.append(message)

    page.on("console", listen)
    try:
        page.evaluate("chatSocket.send(JSON.stringify({message: 'from console'}))")
        assert chat_browser.wait_received(page, 1) == ["<<< from console"]
    finally:
        page.remove_listener("console", listen)
    # onmessage logs the event, then the parsed data, before it adds the line the wait above saw.
    logged = [arg.json_value() for message in console for arg in message.args]
    assert {"message": "from console"} in logged


@pytest.mark.browser
@pytest.mark.parametrize("project", ARTICLE_PAGES)
def test_non_json_from_the_console_closes_the_socket_with_1011_and_says_why(project, shared_server, open_chat):
    """The article's consumer raises on text that is not JSON; the page shows code 1011 and what it means."""
    page = open_chat(shared_server(project).http_url)
    page.evaluate("chatSocket.send('not json')")
    shown = wait_closed(page)
    assert shown.group(1) == "1011"
    assert shown.group(2) == page.evaluate("closeReasons[1011]")
    assert "error" in shown.group(2)


@pytest.mark.browser
@pytest.mark.parametrize("project", HARDENED_PAGES)
def test_the_hardened_consumer_answers_bad_input_on_the_page_and_stays_open(project, shared_server, chromium, request):
    """final/ answers text that is not JSON with an error line on the page, and the socket keeps working."""
    from workbook.history_scene import ALICE
    from workbook.users import create_demo_users

    create_demo_users(project)
    # A room of its own: final/ replays a room's history, and earlier runs may have spoken in a shared one.
    url = f"{shared_server(project).http_url}?room=hardened-{secrets.token_hex(4)}"
    page = chat_browser.open_page(chromium, url, login=ALICE)
    request.addfinalizer(page.context.close)
    page.evaluate("chatSocket.send('not json')")
    page.locator("#log li.error").wait_for()
    [error] = log_lines(page, "error")
    assert error.startswith("!!! ") and "JSON" in error
    assert log_lines(page, "received") == []
    chat_browser.send_from_form(page, "still here")
    page.locator("#log li.received", has_text="still here").wait_for()
    assert page.inner_text("#state") == "open"
    assert log_lines(page, "closed") == []


@pytest.mark.browser
@pytest.mark.parametrize("project", PAGES)
def test_stopping_the_server_turns_the_page_to_closed_with_a_code(project, serve, open_chat):
    """When the server stops, the page shows the closed state and a close code with its usual meaning."""
    server = serve(project, label=f"{project.name}-browser-stop")
    page = open_chat(server.http_url)
    server.stop()
    shown = wait_closed(page)
    assert shown.group(1) in {"1001", "1006"}, f"unexpected close code {shown.group(1)}"
    assert shown.group(2) == page.evaluate(f"closeReasons[{shown.group(1)}]")
    assert page.inner_text("#state") == "closed"


@pytest.mark.browser
@pytest.mark.parametrize("project", ECHO_PAGES)
def test_without_groups_a_second_tab_hears_only_its_own_echo(project, shared_server, open_chat):
    """Before groups, two pages each get their own echo and nothing the other one sent."""
    server = shared_server(project)
    first, second = open_chat(server.http_url), open_chat(server.http_url)
    chat_browser.send_from_form(first, "from the first tab")
    assert chat_browser.wait_received(first, 1) == ["<<< from the first tab"]
    chat_browser.send_from_form(second, "from the second tab")
    assert chat_browser.wait_received(second, 1) == ["<<< from the second tab"]
    assert log_lines(first, "received") == ["<<< from the first tab"]


@pytest.mark.browser
@pytest.mark.parametrize("project", ROOM_PAGES)
def test_a_room_in_the_address_opens_that_rooms_socket(project, shared_server, open_chat):
    """`/?room=kitchen` opens ws://HOST:PORT/ws/chat/kitchen/ and names the room on the page."""
    server = shared_server(project)
    page = open_chat(server.http_url + "?room=kitchen")
    assert page.evaluate("chatSocket.url") == server.ws_url("/ws/chat/kitchen/")
    assert page.inner_text("#room-name") == "kitchen"


@pytest.mark.browser
@pytest.mark.parametrize("project", ROOM_PAGES)
def test_every_page_in_a_room_shows_a_message_and_other_rooms_do_not(project, shared_server, open_chat):
    """A message sent from one page shows on every page of its room, and not in another room."""
    server = shared_server(project)
    sender, listener = open_chat(server.http_url + "?room=kitchen"), open_chat(server.http_url + "?room=kitchen")
    elsewhere = open_chat(server.http_url + "?room=garden")
    chat_browser.send_from_form(sender, "hello, kitchen")
    assert chat_browser.wait_received(sender, 1) == ["<<< hello, kitchen"]
    assert chat_browser.wait_received(listener, 1) == ["<<< hello, kitchen"]
    chat_browser.send_from_form(elsewhere, "hello, garden")
    assert chat_browser.wait_received(elsewhere, 1) == ["<<< hello, garden"]
    assert log_lines(listener, "received") == ["<<< hello, kitchen"]


def test_every_page_from_step_05_on_defines_the_global_chat_socket():
    """Step 05, every later step and final/ serve a page that defines `const chatSocket`, so none escapes the tests."""
    expected = [step.id for step in load_steps() if step.number >= 5]
    if (ROOT / "final" / "manage.py").exists():
        expected.append("final")
    assert [name for name, _ in chat_browser.pages()] == expected


NO_BROWSER = """
import sys
from workbook import browser
browser.system_browser = lambda: sys.argv[1] or None
browser.FALLBACK_CHANNELS = (None,)
try:
    with browser.launch():
        print("launched")
except browser.BrowserMissing as missing:
    print(missing)
"""


@pytest.mark.parametrize(
    "system, said",
    [
        pytest.param("", "no Chromium found", id="none-installed"),
        pytest.param("/bin/false", "/bin/false did not start", id="one-that-does-not-start"),
    ],
)
def test_without_a_working_browser_launch_says_how_to_install_one(system, said, tmp_path):
    """With no working system browser and no Playwright download, launching names the install commands."""
    if system and not Path(system).exists():
        pytest.skip(f"{system} does not exist here")
    # Its own interpreter: Playwright's sync API cannot start while this module's browser runs.
    done = run_python("-c", NO_BROWSER, system, env={"PLAYWRIGHT_BROWSERS_PATH": str(tmp_path)})
    assert done.returncode == 0, done.stderr
    assert said in done.stdout
    assert "apt-get install chromium" in done.stdout
    assert "python -m playwright install chromium" in done.stdout


def test_a_wrong_workbook_browser_path_is_named(monkeypatch, tmp_path):
    """WORKBOOK_BROWSER pointing at nothing gives one line naming the variable."""
    monkeypatch.setenv("WORKBOOK_BROWSER", str(tmp_path / "no-such-chrome"))
    with pytest.raises(chat_browser.BrowserMissing, match="WORKBOOK_BROWSER=.*no-such-chrome"):
        chat_browser.system_browser()
