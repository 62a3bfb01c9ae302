"""The projector diff: `make step-N diff HTML=1` writes one self-contained page, checked in a real Chromium."""

from __future__ import annotations

import re
import shutil
import struct
import subprocess

import pytest

from workbook import get_step
from workbook.classroom.diff_html import _align, projector_html, screenshot, write
from workbook.diffs import changed_files
from workbook.registry import ROOT
from workbook.servers.server import TIMEOUT

SCREENSHOT = ROOT / "docs" / "screenshot-diff-04.png"
PROJECTOR = {"width": 1280, "height": 720}


def png_size(path) -> tuple[int, int]:
    """Read a PNG's width and height from its header."""
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", head[16:24])


@pytest.fixture(scope="module")
def page_04(tmp_path_factory):
    """The projector page of step 4, written where a test may read it."""
    return write(get_step(3), get_step(4), tmp_path_factory.mktemp("diff") / "step-04.html", open_it=False)


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed (use python -m workbook)")
def test_make_step_diff_html_writes_the_page_and_prints_its_path():
    """`make step-4 diff HTML=1` writes build/diffs/step-04.html and prints where it is, as a file:// address too."""
    done = subprocess.run(["make", "--no-print-directory", "step-4", "diff", "HTML=1"], cwd=ROOT,
                          capture_output=True, text=True, timeout=TIMEOUT * 4)
    assert done.returncode == 0, done.stderr
    target = ROOT / "build" / "diffs" / "step-04.html"
    assert done.stdout == f"workbook: wrote build/diffs/step-04.html (open {target.as_uri()} on the projector)\n"
    assert target.read_text(encoding="utf-8") == projector_html(get_step(3), get_step(4))


def test_the_page_has_one_section_per_changed_file_and_loads_nothing_from_outside():
    """Every file the step changes has its own section; the page needs no stylesheet, script or font from elsewhere."""
    text = projector_html(get_step(3), get_step(4))
    assert re.findall(r'<section id="([^"]+)">', text) == changed_files(get_step(3), get_step(4))
    assert not re.search(r"""(src|href)\s*=|<link|@import|url\(""", text)
    assert "<h1>step 3 · The scope → step 4 · Routing</h1>" in text


def test_an_edited_line_is_shown_beside_the_line_it_replaces():
    """A removed line sits beside the most similar added line; an unrelated added line stands alone."""
    old = ["from channels.routing import ProtocolTypeRouter"]
    new = ["from channels.auth import AuthMiddlewareStack",
           "from channels.routing import ProtocolTypeRouter, URLRouter"]
    assert _align(old, new) == [(None, 0), (0, 1)]
    assert _align(["x = 1"], ["completely different"]) == [(0, None), (None, 0)]


def test_the_final_project_and_a_span_of_steps_get_their_own_pages(tmp_path, capsys):
    """`diff final --projector` and `diff 2 4 --projector` name their pages final.html and step-02-to-04.html."""
    from workbook.registry import final, previous

    assert write(previous(final()), final(), open_it=False).name == "final.html"
    assert "→ the final project</h1>" in projector_html(previous(final()), final())
    assert write(get_step(2), get_step(4), spans=True, open_it=False).name == "step-02-to-04.html"
    assert "build/diffs/step-02-to-04.html" in capsys.readouterr().out


@pytest.mark.browser
def test_chromium_renders_it_large_and_side_by_side_within_a_projectors_width(page_04, chromium, tmp_path):
    """At 1280×720 the code is at least 18 px, nothing scrolls sideways, and `u` switches to the unified layout."""
    context = chromium.new_context(viewport=PROJECTOR)
    try:
        page = context.new_page()
        requested = []
        page.on("request", lambda request: requested.append(request.url))
        page.goto(page_04.as_uri())
        sizes = page.evaluate("""() => ({
            body: parseFloat(getComputedStyle(document.body).fontSize),
            code: parseFloat(getComputedStyle(document.querySelector('table.sbs td.add')).fontSize),
            overflow: document.documentElement.scrollWidth - document.documentElement.clientWidth,
            sections: document.querySelectorAll('section').length,
        })""")
        assert sizes["body"] >= 18 and sizes["code"] >= 18, sizes
        assert sizes["overflow"] <= 0, sizes
        assert sizes["sections"] == len(changed_files(get_step(3), get_step(4)))
        assert page.is_visible("table.sbs") and not page.is_visible("table.unified")
        assert "re_path(r'ws/chat/$'" in page.locator("section").first.locator("table.sbs td.add").all_inner_texts()[5]
        page.keyboard.press("u")
        assert page.is_visible("table.unified") and not page.is_visible("table.sbs")
        assert page.inner_text("#layout") == "side by side"
        assert all(url.startswith(("file:", "data:")) for url in requested), requested
        size = screenshot(page_04, tmp_path / "diff.png", chromium, PROJECTOR)
        assert size > 10_000 and png_size(tmp_path / "diff.png") == (1280, 720)
    finally:
        context.close()


@pytest.mark.browser
def test_a_narrow_screen_gets_the_unified_layout_by_itself(page_04, chromium):
    """Below 900 px wide the page starts unified, and the button brings the columns back."""
    context = chromium.new_context(viewport={"width": 800, "height": 600})
    try:
        page = context.new_page()
        page.goto(page_04.as_uri())
        assert page.is_visible("table.unified") and not page.is_visible("table.sbs")
        assert page.inner_text("#layout") == "side by side"
        page.click("#layout")
        assert page.is_visible("table.sbs") and not page.is_visible("table.unified")
    finally:
        context.close()


def test_the_screenshot_in_docs_is_the_projector_page_of_step_04():
    """docs/screenshot-diff-04.png exists, as `diff 4 --projector --screenshot` writes it at 1280×720."""
    assert png_size(SCREENSHOT) == (1280, 720)
