"""One failure catalogue (pitfalls/pitfalls.toml) feeds the hints, the doctor, the lab and the troubleshooting page."""

from __future__ import annotations

import ast
import re
import shutil

import pytest
from conftest import DOCTOR_MODULES, run_python

from workbook import WorkbookError, catalogue, get_step
from workbook.doctor.command import examine, report
from workbook.doctor.hints import hint_for
from workbook.doctor.pitfalls import describe, load_pitfalls
from workbook.doctor.troubleshooting import render, render_entry
from workbook.registry import ROOT

ENTRIES = catalogue.load()
MATCHED = [entry for entry in ENTRIES.values() if entry.match and entry.symptom]


def test_the_troubleshooting_page_is_the_one_the_catalogue_generates():
    """docs/troubleshooting.md is exactly what `python -m workbook docs` writes from the catalogue."""
    page = (ROOT / catalogue.PAGE).read_text(encoding="utf-8")
    assert page == render(), "docs/troubleshooting.md is stale: run `python -m workbook docs`"


def test_workbook_docs_check_passes_on_the_committed_page():
    """`python -m workbook docs --check` compares without writing, and exits 0 on the committed page."""
    result = run_python("-m", "workbook", "docs", "--check")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "workbook: docs/troubleshooting.md is current" in result.stdout


def test_the_doctor_takes_every_fix_from_the_catalogue_and_names_only_catalogued_slugs():
    """No doctor module writes a fix of its own; every slug a Finding names has a catalogue entry."""
    assert sum("Finding(" in path.read_text(encoding="utf-8") for path in DOCTOR_MODULES) >= 2, "the doctor moved"
    for path in DOCTOR_MODULES:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "Finding":
                assert len(node.args) == 3 and not node.keywords, f"{path.name}:{node.lineno} retypes a fix"
                slug = node.args[0]
                if isinstance(slug, ast.Constant):
                    assert slug.value in ENTRIES, f"{path.name}:{node.lineno}: {slug.value} is not catalogued"


@pytest.mark.parametrize("entry", MATCHED, ids=lambda e: e.slug)
def test_each_entrys_own_symptom_gets_that_entrys_hint(entry):
    """The hint `make check` prints for an entry's symptom is that entry's, not an earlier entry's."""
    found = re.search(entry.match, entry.symptom)
    assert found, f"{entry.slug}: its match does not find its own symptom"
    assert hint_for(entry.symptom) == entry.hint_from(found)


def test_a_hint_template_fills_in_the_match_and_the_fix():
    """A hint's \\1 takes the matched name and {fix} the entry's fix."""
    hint = hint_for("RuntimeWarning: coroutine 'InMemoryChannelLayer.group_send' was never awaited")
    assert hint.startswith("InMemoryChannelLayer.group_send was called without await")
    missing = catalogue.fix("no-routing-module")
    assert hint_for("No module named 'chat.routing'") == f"chat/routing.py does not exist yet: {missing}"
    assert hint_for("nothing known", "the default") == "the default"


def test_a_steps_hint_that_names_a_catalogue_fix_shows_that_fix():
    """steps.toml's {fix:SLUG} becomes the catalogue's fix, so the hint never retypes it."""
    raw = (ROOT / "steps" / "steps.toml").read_text(encoding="utf-8")
    named = re.findall(r"\{fix:([\w-]+)\}", raw)
    assert named, "no step hint refers to the catalogue"
    hints = [hint for number in range(1, 10) for hint in get_step(number).hints]
    assert not any("{fix:" in hint for hint in hints)
    for slug in named:
        assert any(catalogue.fix(slug) in hint for hint in hints), slug


def test_the_lab_reads_its_pitfalls_from_the_catalogue():
    """The lab's pitfalls are the catalogue's [[pitfall]] entries, and `pitfall show` prints the catalogue's fix."""
    pitfalls = load_pitfalls()
    assert [p.slug for p in pitfalls] == [e.slug for e in ENTRIES.values() if e.kind == "pitfall"]
    shown = describe(next(p for p in pitfalls if p.slug == "no-as-asgi"))
    assert f"fix: {catalogue.fix('no-as-asgi')}" in shown


OLD_FORMAT = '''
[[pitfall]]
slug = "late-pitfall"
step = 5
title = "a pitfall written before the catalogue"
trigger = "open the page"
seen_in = "the server log; the browser console"
symptom = """ValueError: something went wrong
(then nothing else)"""
cause = "Something was wrong."
fix = "Do the right thing."
'''


def test_a_pitfall_in_the_format_before_the_catalogue_still_loads_and_renders(tmp_path):
    """An entry with only the lab's old fields is a catalogue entry: it gets its page entry and index row."""
    path = tmp_path / "pitfalls.toml"
    path.write_text(OLD_FORMAT, encoding="utf-8")
    entry = catalogue.load(path)["late-pitfall"]
    text = render_entry(entry)
    assert text.startswith('<a id="late-pitfall"></a>\n### a pitfall written before the catalogue\n')
    assert "```\nValueError: something went wrong\n```" in text and "(then nothing else)" not in text
    assert "- **Why:** Something was wrong.\n- **Fix:** Do the right thing.\n" in text
    assert "- **Reproduce:** `python -m workbook pitfall show late-pitfall`." in text


def test_a_misspelt_field_in_the_catalogue_is_named(tmp_path):
    """A field the catalogue does not know stops the load with one line naming the entry and the field."""
    path = tmp_path / "pitfalls.toml"
    path.write_text(OLD_FORMAT.replace('fix = "', 'fixx = "Do it."\nfix = "'), encoding="utf-8")
    with pytest.raises(WorkbookError, match=r"\[\[pitfall\]\] late-pitfall has unknown field\(s\) fixx"):
        catalogue.load(path)


# --- the doctor: a router without its websocket entry ---------------------------------------------------
def _without_websocket_entry(project):
    asgi = project / "mychannels" / "asgi.py"
    text = asgi.read_text(encoding="utf-8")
    entry = "    'websocket': AuthMiddlewareStack(\n        URLRouter(websocket_urlpatterns)\n    ),\n"
    assert entry in text
    asgi.write_text(text.replace(entry, ""), encoding="utf-8")


def test_a_router_that_lost_its_websocket_entry_beside_routes_is_a_problem(tmp_path, capsys):
    """Step 4 without the router's 'websocket' entry, chat/routing.py still there: a problem, exit 1, the fix."""
    project = tmp_path / "04-no-websocket"
    shutil.copytree(get_step(4).path, project, ignore=shutil.ignore_patterns("db.sqlite3", "__pycache__"))
    _without_websocket_entry(project)
    findings = examine(project)
    found = [f for f in findings if f.slug == "no-websocket-route"]
    assert len(found) == 1 and found[0].problem, findings
    assert "chat/routing.py defines websocket_urlpatterns, but nothing serves them" in found[0].what
    assert found[0].fix == catalogue.fix("no-websocket-route")
    assert report("04-no-websocket", findings) == 1
    assert "problem [no-websocket-route]" in capsys.readouterr().out


def test_a_project_without_any_websocket_code_gets_only_a_warning(capsys):
    """Step 1's router knows only HTTP and the project has no routes or consumers: a warning, exit 0."""
    findings = examine(get_step(1).path)
    found = [f for f in findings if f.slug == "no-websocket-route"]
    assert len(found) == 1 and not found[0].problem
    assert found[0].what.endswith("fine until this project uses websockets")
    assert report("01-bare-asgi", findings) == 0


def test_a_consumer_that_nothing_routes_to_yet_is_a_warning_that_names_it():
    """Step 2 has a consumer and no routes yet (it is tested in-process): a warning naming ChatConsumer."""
    findings = examine(get_step(2).path)
    found = [f for f in findings if f.slug == "no-websocket-route"]
    assert len(found) == 1 and not found[0].problem
    assert "ChatConsumer (chat/consumers.py) exists but nothing routes to it yet" in found[0].what
