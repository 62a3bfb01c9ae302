"""The snapshots are honest: each step changes exactly what it says, and every project passes Django's checks."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys

import pytest
from conftest import STEPS, run_python, steps

from workbook.diffs import changed_files
from workbook.registry import STEPS_DIR, baseline, previous


def step_md_changed(step) -> set[str]:
    """Collect the paths each "What changed" bullet names before its colon (a bullet may name several)."""
    text = (step.path / "STEP.md").read_text(encoding="utf-8")
    section = text.split("## What changed", 1)[1].split("\n## ", 1)[0]
    paths = set()
    for bullet in re.split(r"\n(?=- )", section.strip()):
        if bullet.startswith("- `"):
            names = bullet.split("`:", 1)[0] + "`"
            paths.update(re.findall(r"`([^`]+)`", names))
    return paths


@pytest.mark.parametrize("step", steps())
def test_the_registry_lists_exactly_the_files_that_changed(step):
    """steps.toml's `changed` equals the real difference from the previous step; all else is byte-identical."""
    assert changed_files(previous(step), step) == sorted(step.changed)


@pytest.mark.parametrize("step", steps())
def test_step_md_names_exactly_the_files_that_changed(step):
    """STEP.md's "What changed" bullets name the same files as the real diff."""
    assert step_md_changed(step) == set(changed_files(previous(step), step))


@pytest.mark.parametrize("step", steps())
def test_step_md_has_every_section_and_a_diagram(step):
    """STEP.md has its title, the standard sections and a Mermaid diagram of the request flow."""
    text = (step.path / "STEP.md").read_text(encoding="utf-8")
    assert text.startswith(f"# Step {step.number:02d} · {step.title}\n")
    for heading in ("## What changed", "## Run it", "## What you should see", "## Try this"):
        assert heading in text
    assert "```mermaid" in text
    assert f"make step-{step.number} run" in text


@pytest.mark.parametrize("step", steps())
def test_manage_py_check_passes(step):
    """`python manage.py check` reports no issues in the step."""
    result = run_python("manage.py", "check", cwd=step.path)
    assert result.returncode == 0, result.stderr
    assert "System check identified no issues" in result.stdout


def test_every_step_directory_is_in_the_registry():
    """steps/ holds the baseline and the registered steps, nothing else."""
    expected = {baseline().id, *(step.id for step in STEPS)}
    found = {path.name for path in STEPS_DIR.iterdir() if path.is_dir()}
    assert found == expected


def test_the_baseline_is_untouched_startproject_output(tmp_path):
    """steps/00-startproject matches a fresh `django-admin startproject mychannels`, secret key aside."""
    subprocess.run(
        [sys.executable, "-m", "django", "startproject", "mychannels"], cwd=tmp_path, check=True, timeout=60
    )
    fresh = tmp_path / "mychannels"
    assert changed_files(baseline(), fresh) == ["mychannels/settings.py"]
    key = re.compile(r"^SECRET_KEY = .*$", re.MULTILINE)
    ours = key.sub("", (baseline().path / "mychannels/settings.py").read_text())
    theirs = key.sub("", (fresh / "mychannels/settings.py").read_text())
    assert ours == theirs
    shutil.rmtree(fresh)


@pytest.mark.parametrize("step", steps())
def test_settings_keep_startproject_text_above_the_workbook_block(step):
    """Above the marked workbook block, settings.py is startproject's, apart from INSTALLED_APPS entries."""
    ours = (step.path / "mychannels/settings.py").read_text()
    marker = "# --- Added by the Django Channels workbook"
    assert marker in ours
    head = ours.split(marker, 1)[0]
    original = (baseline().path / "mychannels/settings.py").read_text()
    apps = re.compile(r"INSTALLED_APPS = \[.*?\]\n", re.DOTALL)
    assert apps.sub("", head).rstrip() == apps.sub("", original).rstrip()
