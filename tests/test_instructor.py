"""docs/instructor.md: agendas that fit, built from steps.toml, and coaching notes read from the pitfall catalogue."""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import subprocess
import sys

import pytest

from workbook import load_steps
from workbook.classroom import agenda
from workbook.diffs import changed_files
from workbook.doctor.pitfalls import load_pitfalls
from workbook.errors import WorkbookError
from workbook.learner.workspace import backups_dir, start_of
from workbook.registry import ROOT, get_step
from workbook.servers.server import TIMEOUT

AGENDAS = agenda.build_agendas()
PAGE = agenda.PAGE.read_text(encoding="utf-8")


def test_the_committed_page_equals_what_the_agenda_command_writes():
    """docs/instructor.md holds exactly the tables and notes `python -m workbook agenda --write` generates."""
    assert agenda.updated(PAGE, agenda.generated()) == PAGE, "run `python -m workbook agenda --write`"


def test_the_agenda_command_says_when_the_page_is_stale(tmp_path, monkeypatch):
    """`agenda --check` exits 1 with one line on a page whose tables were edited by hand, 0 on the committed one."""
    stale = tmp_path / "instructor.md"
    stale.write_text(PAGE.replace("| 0:05 | 10 |", "| 0:05 | 11 |", 1), encoding="utf-8")
    check = [sys.executable, "-m", "workbook", "agenda", "--check"]
    assert subprocess.run(check, cwd=ROOT, capture_output=True, text=True, timeout=TIMEOUT).returncode == 0
    monkeypatch.setattr(agenda, "PAGE", stale)
    with pytest.raises(WorkbookError, match=r"is out of date: run `python -m workbook agenda --write`$"):
        agenda.cmd_agenda(type("Args", (), {"write": False, "check": True})())


@pytest.mark.parametrize("plan", AGENDAS, ids=lambda a: a.slug)
def test_every_agenda_fits_its_length_set_up_and_breaks_included(plan):
    """The blocks of each agenda, set-up, breaks and wrap-up counted, add up to no more than its length."""
    assert plan.blocks[0].what == "set-up" and plan.blocks[0].minutes > 0
    assert plan.total == sum(block.minutes for block in plan.blocks) <= plan.length
    assert f"{plan.total} of {plan.length} minutes planned" in PAGE


def test_an_agendas_minutes_follow_steps_toml():
    """Raising one step's teach and exercise minutes in the registry raises each agenda by what its mode uses."""
    steps = load_steps()
    longer = [dataclasses.replace(s, teach=s.teach + 7, exercise=s.exercise + 100) if s.number == 5 else s
              for s in steps]
    for before, after in zip(AGENDAS, agenda.build_agendas(steps=longer), strict=True):
        block = next(b for b in before.blocks if b.what.startswith("step 5 "))
        assert after.total - before.total == (7 if block.mode.startswith("demo") else 107), before.slug


def test_the_90_minutes_are_the_articles_five_stages_and_learners_build_the_routing():
    """The 90-minute agenda covers steps 1 to 5, in order, and step 4 is built in learner mode."""
    short = next(a for a in AGENDAS if a.length == 90)
    steps = [b for b in short.blocks if b.what.startswith("step ")]
    assert [b.what.split(" · ")[0] for b in steps] == [f"step {n}" for n in range(1, 6)]
    assert [b.checkpoint for b in steps if b.mode.startswith("build")] == ["`make step-4 start REPLACE=1`"]


def test_the_full_day_takes_every_step_in_the_registry_and_a_new_one_joins_it():
    """The full day lists every step of steps.toml and the final project; a step added to the registry joins it."""
    full = next(a for a in AGENDAS if a.slug == "full-day")
    steps = load_steps()
    assert [b.what for b in full.blocks if b.what.startswith("step ")] == [f"step {s.number} · {s.title}"
                                                                         for s in steps]
    assert any(b.what == "the final project" for b in full.blocks)
    added = dataclasses.replace(steps[-1], number=len(steps) + 1, slug="added", title="Added")
    grown = next(a for a in agenda.build_agendas(steps=[*steps, added]) if a.slug == "full-day")
    assert grown.total == full.total + added.minutes
    assert f"step {added.number} · Added" in [b.what for b in grown.blocks]


def test_an_agenda_naming_a_step_the_registry_lacks_is_refused():
    """A definition that names a step steps.toml does not have gets one line naming it."""
    definition = agenda.read_definition()
    definition["agenda"][0] = {**definition["agenda"][0], "steps": [1, 99]}
    with pytest.raises(WorkbookError, match=r"names steps \[99\], which steps.toml does not have"):
        agenda.build_agendas(definition)


def test_every_coached_failure_is_in_the_catalogue_and_quoted_verbatim():
    """Each slug the notes coach exists in the catalogue, and its symptom and fix appear on the page as written."""
    notes = agenda.coached()
    slugs = {p.slug for detailed, _ in notes.values() for p in detailed}
    assert slugs, "no step has coaching notes"
    for pitfall in load_pitfalls():
        if pitfall.slug in slugs:
            assert "\n".join(f"  {line}" for line in pitfall.symptom.splitlines()) in PAGE
            assert f"  Fix: {pitfall.fix}" in PAGE
            assert f"`make pitfall P={pitfall.slug}`" in PAGE
    assert all(len(detailed) <= 3 for detailed, _ in notes.values())


def test_a_step_without_chosen_failures_gets_its_own_catalogue_entries():
    """A pitfall of a step the definition does not coach (a new step's, say) is coached at that step."""
    pitfalls = load_pitfalls()
    new = dataclasses.replace(pitfalls[0], slug="brand-new", step=3, title="a brand new failure")
    notes = agenda.coached(pitfalls=[*pitfalls, new])
    assert [p.slug for p in notes[3][0]] == ["brand-new"]
    definition = {**agenda.read_definition(), "coach": {"3": ["no-such-slug"]}}
    with pytest.raises(WorkbookError, match=r"\[coach\] names no-such-slug, which the catalogue does not have"):
        agenda.coached(definition)


CHECKPOINTS = sorted({int(m) for plan in AGENDAS for block in plan.blocks
                      for m in re.findall(r"`make step-(\d+) start REPLACE=1`", block.checkpoint)})


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed (use python -m workbook start N)")
def test_each_build_checkpoint_puts_a_lost_learners_workspace_at_the_start_of_its_step(tmp_path):
    """`make step-N start REPLACE=1` over half-done work backs it up and leaves exactly the start of step N."""
    workspace = tmp_path / "workspace"
    env = {**os.environ, "WORKBOOK_WORKSPACE": str(workspace)}
    assert CHECKPOINTS
    for number in CHECKPOINTS:
        (workspace / "chat").mkdir(parents=True, exist_ok=True)
        (workspace / "chat" / "half_done.py").write_text("# a lost learner's work\n", encoding="utf-8")
        done = subprocess.run(["make", "--no-print-directory", f"step-{number}", "start", "REPLACE=1"], cwd=ROOT,
                              env=env, capture_output=True, text=True, timeout=TIMEOUT * 4)
        assert done.returncode == 0, done.stdout + done.stderr
        assert changed_files(start_of(get_step(number)), workspace) == [], number
    assert len(list(backups_dir(workspace).iterdir())) == len(CHECKPOINTS)


def test_every_link_on_the_page_resolves_and_each_failure_has_its_troubleshooting_entry():
    """Relative links in docs/instructor.md point at files that exist, and troubleshooting.md#SLUG anchors exist."""
    docs = ROOT / "docs"
    for target in re.findall(r"\]\(((?!https?://)[^)]+)\)", PAGE) + re.findall(r'<img src="([^"]+)"', PAGE):
        path, _, anchor = target.partition("#")
        assert (docs / path).exists(), f"docs/instructor.md links to missing {path}"
        if anchor:
            assert f'<a id="{anchor}"></a>' in (docs / path).read_text(encoding="utf-8"), target
