"""Find a Chromium, drive it headless through Playwright, and take the screenshots of the chat pages."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from urllib.parse import urlsplit

from .errors import WorkbookError
from .registry import ROOT, load_steps
from .state import TIMEOUT

DEV_COMMANDS = {"screenshots"}
FLAGS = [
    "--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]
# Debian and Ubuntu name the browser `chromium` or `chromium-browser`; WORKBOOK_BROWSER points at any other.
SYSTEM_BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
INSTALL_HINT = (
    "on Debian/Ubuntu run `sudo apt-get install chromium`; elsewhere, or if that one will not start, run "
    "`python -m playwright install chromium` (or set WORKBOOK_BROWSER to a Chrome/Chromium executable)"
)
# Without a system browser: Playwright's own download (None), then an installed Chrome or Edge (Windows, macOS).
FALLBACK_CHANNELS = (None, "chrome", "msedge")
VIEWPORT = {"width": 760, "height": 480}
FIRST_PAGE = 5
DEFINES_CHAT_SOCKET = re.compile(r"\bconst\s+chatSocket\s*=\s*new\s+WebSocket\(")


class BrowserMissing(WorkbookError):
    """No Chromium to drive: the message says how to install one."""


def system_browser() -> str | None:
    """Return the path of an installed Chromium or Chrome, or None."""
    chosen = os.environ.get("WORKBOOK_BROWSER")
    if chosen:
        if not (shutil.which(chosen) or Path(chosen).is_file()):
            raise BrowserMissing(f"WORKBOOK_BROWSER={chosen} is not an executable: fix the path, or unset it")
        return shutil.which(chosen) or chosen
    for name in SYSTEM_BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").is_file() else None


def pages() -> list[tuple[str, Path]]:
    """List (name, project) for every step from 05 on, and final/, whose page defines the global chatSocket."""
    candidates = [(step.id, step.path) for step in load_steps() if step.number >= FIRST_PAGE]
    candidates.append(("final", ROOT / "final"))
    found = []
    for name, project in candidates:
        page = project / "templates" / "index.html"
        if page.is_file() and DEFINES_CHAT_SOCKET.search(page.read_text(encoding="utf-8")):
            found.append((name, project))
    return found


def _launch(playwright, args: list[str]):
    from playwright.sync_api import Error

    options = {"headless": True, "args": args, "timeout": TIMEOUT * 1000}
    problems = []
    executable = system_browser()
    if executable:
        try:
            return playwright.chromium.launch(executable_path=executable, **options)
        except Error as problem:
            if os.environ.get("WORKBOOK_BROWSER"):
                raise
            # Ubuntu's chromium-browser can be a stub asking for the snap: fall back rather than stop here.
            problems.append(f"{executable} did not start ({str(problem).splitlines()[0]})")
    for channel in FALLBACK_CHANNELS:
        try:
            return playwright.chromium.launch(channel=channel, **options)
        except Error as problem:
            if not re.search(r"Executable doesn't exist|is not found|not installed", str(problem)):
                raise
    raise BrowserMissing(f"{'; '.join(problems) or 'no Chromium found'}: {INSTALL_HINT}")


@contextmanager
def launch(*extra_args: str) -> Iterator:
    """Start a headless Chromium with a fresh profile (FLAGS plus `extra_args`); always close it and Playwright."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        hint = "run `make setup` (or `python -m workbook setup --dev`)"
        raise BrowserMissing(f"Playwright is not installed: {hint}") from None
    with sync_playwright() as playwright:
        browser = _launch(playwright, [*FLAGS, *extra_args])
        try:
            yield browser
        finally:
            browser.close()


def needs_login(project: Path) -> bool:
    """Tell whether a project's chat refuses anonymous sockets (step 9 on: it has Django's login page)."""
    return (Path(project) / "templates" / "registration" / "login.html").is_file()


def open_page(browser, url: str, login: tuple[str, str] | None = None):
    """Open `url` in a fresh context (logged in as `login`, a username and password, first) and wait until the
    page's socket is open; return the page."""
    page = browser.new_context(viewport=VIEWPORT).new_page()
    page.set_default_timeout(TIMEOUT * 1000)
    return show_chat(page, url, login)


def show_chat(page, url: str, login: tuple[str, str] | None = None):
    """Load `url` in an open page (logging in as `login` first) and wait until its socket is open; return the page.

    Every load is a fresh document with a socket of its own: a page can show one chat after another.
    """
    if login:
        log_in(page, url, *login)
    page.goto(url)
    page.wait_for_selector('#state[data-state="open"]')
    return page


def log_in(page, url: str, username: str, password: str) -> None:
    """Log in through the login form of the site serving `url` (step 9 on), as a learner would."""
    parts = urlsplit(url)
    page.goto(f"{parts.scheme}://{parts.netloc}/accounts/login/?next=/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("button[type=submit]")
    page.wait_for_selector("#username")


def send_from_form(page, message: str) -> None:
    """Type `message` into the page's form and submit it."""
    page.fill("#message-input", message)
    page.click("#send-button")


def send_from_console(page, text: str) -> None:
    """Send a raw text frame on the global chatSocket, as a learner does in the devtools console."""
    page.evaluate("text => chatSocket.send(text)", text)


def wait_received(page, count: int) -> list[str]:
    """Wait until the page shows `count` received lines; return them."""
    page.wait_for_function("n => document.querySelectorAll('#log li.received').length >= n", arg=count)
    return page.locator("#log li.received").all_inner_texts()


def converse(page) -> None:
    """Have the short conversation the screenshots show: one message from the form, one from the console."""
    send_from_form(page, "hello, channels")
    wait_received(page, 1)
    send_from_console(page, '{"message": "sent from the devtools console"}')
    wait_received(page, 2)


def screenshot(page, path: Path) -> int:
    """Save the whole page as a PNG at `path` (directories created); return its size in bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path), full_page=True, caret="hide", animations="disabled")
    return path.stat().st_size


def _shown(path: Path) -> str:
    try:
        return os.path.relpath(path)
    except ValueError:  # another drive, on Windows
        return str(path)


def cmd_screenshots(args) -> int:
    from .servers.server import Server

    out = Path(args.out)
    every = pages()
    wanted = (args.only or "").zfill(2) if (args.only or "").isdigit() else (args.only or "")
    chosen = [(name, project) for name, project in every if name.startswith(wanted)]
    if not chosen:
        names = ", ".join(name for name, _ in every) or "none yet"
        raise WorkbookError(f"no chat page is named {args.only!r}: choose from {names}")
    with launch() as browser:
        from playwright.sync_api import Error

        for name, project in chosen:
            from .history_scene import fresh_copy, replays_history

            scene = fresh_copy(project) if replays_history(project) else nullcontext(project)
            with scene as project:  # a step with history is shot from a copy: its database holds only this scene
                login = None
                if needs_login(project):
                    from .users import create_demo_users

                    create_demo_users(project)
                    login = ("alice", "alice-password")
                with Server(project, label=name) as server:
                    try:
                        if replays_history(project):
                            page = late_joiner(browser, server.http_url)
                        else:
                            page = open_page(browser, server.http_url, login=login)
                            converse(page)
                        target = out / f"screenshot-{name}.png"
                        size = screenshot(page, target)
                        page.context.close()
                    except Error as problem:
                        raise WorkbookError(
                            f"the page of {name} did not chat as expected: {str(problem).splitlines()[0]} "
                            f"(server output: {_shown(server.log_path)})"
                        ) from None
            print(f"workbook: wrote {_shown(target)} ({size // 1024} KB)")
    return 0


def add_commands(sub) -> None:
    """Add `screenshots` to the command line."""
    shots = sub.add_parser("screenshots", help="screenshot each chat page after a short conversation, into docs/")
    shots.add_argument("--out", default=str(ROOT / "docs"), help="directory for the PNG files (default: docs/)")
    shots.add_argument("--only", metavar="NAME", help="only pages whose name starts with NAME, e.g. 05 or final")
    shots.set_defaults(func=cmd_screenshots)


def late_joiner(browser, url: str):
    """alice has the usual short conversation; then bob's page opens, shows it as history, and answers."""
    from .history_scene import ALICE, BOB

    alice = open_page(browser, url, login=ALICE)
    converse(alice)
    alice.context.close()
    bob = open_page(browser, url, login=BOB)
    wait_received(bob, 2)
    send_from_form(bob, "hi alice, I just caught up")
    wait_received(bob, 3)
    return bob
