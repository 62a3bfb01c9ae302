"""What the notebooks show besides a server: code and diffs read from steps/, scopes side by side, the live page."""

from __future__ import annotations

import base64
import re
import urllib.request
from pathlib import Path
from textwrap import dedent

from ..errors import WorkbookError
from ..registry import Step, previous
from ..servers.server import Server
from ..state import TIMEOUT
from .kernel import as_step


def inprocess_scope(step: Step | int | str) -> str:
    """Connect to a step's consumer with channels' test client, in a fresh interpreter; return the scope it printed."""
    from ..communicator import drive
    from ..scopes import last_scope

    step = as_step(step)
    scope = last_scope(drive(step, [])["printed"])
    if scope is None:
        raise WorkbookError(f"{step.label}'s consumer printed no scope: it pprints self.scope from step 3 on")
    return scope


def compare_scopes(before: str, after: str, before_label: str = "before", after_label: str = "after"):
    """Put two printed scopes side by side, one row per key, the keys only `after` has highlighted."""
    from ..scopes import compare

    return compare(before, after, before_label, after_label)


# --- code and pages ------------------------------------------------------------
def diff(step: Step | int | str):
    """Return the step's changes since the previous step, as HTML Jupyter renders (read from steps/)."""
    from ..diffs import as_html

    step = as_step(step)
    return as_html(previous(step), step)


class Source(str):
    """Source code that Jupyter shows highlighted, with inline styles so HTML copies keep them."""

    language = "text"

    def _repr_html_(self) -> str:
        from pygments import highlight
        from pygments.formatters import HtmlFormatter
        from pygments.lexers import get_lexer_by_name

        mono = "font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 13px"
        return highlight(str(self), get_lexer_by_name(self.language), HtmlFormatter(noclasses=True, prestyles=mono))

    def __repr__(self) -> str:
        return str(self)


def source(step: Step | int | str | Path, path: str, between: tuple[str, str] | None = None,
           language: str | None = None):
    """Return a file of a step or directory (or the part between two marker lines), highlighted."""
    directory = step if isinstance(step, Path) else as_step(step).path
    text = (directory / path).read_text(encoding="utf-8")
    if between:
        start, end = between
        match = re.search(re.escape(start) + r"\n(.*?)\n[ \t]*" + re.escape(end), text, re.DOTALL)
        if not match:
            raise WorkbookError(f"{path} has no {start} … {end} block")
        text = dedent(match.group(1))
    suffixes = {".py": "python", ".html": "html", ".js": "javascript", ".toml": "toml"}
    code = Source(text)
    in_script = bool(between) and between[0].startswith("<script")
    code.language = language or ("javascript" if in_script else suffixes.get(Path(path).suffix, "text"))
    return code


def fetch(url: str) -> str:
    """GET a URL, print its status and page title, and return the body."""
    with urllib.request.urlopen(url, timeout=TIMEOUT) as response:
        body = response.read().decode("utf-8", errors="replace")
        title = re.search(r"<title>(.*?)</title>", body, re.DOTALL)
        print(f"GET {url} -> {response.status} {response.reason}, title: {title.group(1) if title else '(none)'}")
    return body


def contents():
    """Return the table of stages from the registry, each linked to its notebook."""
    from IPython.display import Markdown

    from ..registry import load_steps

    rows = ["| Stage | The one idea | Notebook |", "|---|---|---|"]
    for step in load_steps():
        name = step.notebook.name
        link = f"[{name}]({name})" if step.notebook.exists() else "(not written yet)"
        rows.append(f"| {step.number:02d} · {step.title} | {step.goal} | {link} |")
    return Markdown("\n".join(rows))


def page(server: Server, say: str | None = None):
    """Show the live page as a link and a screenshot taken now in headless Chromium; `say` sends it from the form.

    Not an IFrame: every step keeps XFrameOptionsMiddleware, whose `X-Frame-Options: DENY` blanks the page in one.
    """
    from concurrent.futures import ThreadPoolExecutor

    from IPython.display import HTML

    from ..browser import BrowserMissing

    url = server.http_url
    link = f'<p>The live page: <a href="{url}" target="_blank">{url}</a> (opens in a new tab)</p>'
    try:
        # Playwright's sync API refuses a thread with a running event loop, and the kernel's has one.
        with ThreadPoolExecutor(1) as pool:
            png = pool.submit(_screenshot, server.http_url, say).result()
    except BrowserMissing as missing:
        return HTML(f"{link}<p>No screenshot: {missing}</p>")
    image = base64.b64encode(png).decode("ascii")
    caption = f"Headless Chromium, just now{f', after sending {say!r} from the form' if say else ''}:"
    return HTML(f'{link}<p>{caption}</p><img alt="the page of {server.label}" src="data:image/png;base64,{image}">')


def _screenshot(url: str, say: str | None) -> bytes:
    from ..browser import launch, open_page, send_from_form, wait_received

    with launch() as browser:
        shown = open_page(browser, url)
        if say:
            send_from_form(shown, say)
            wait_received(shown, 1)
        return shown.screenshot(full_page=True, caret="hide", animations="disabled")
