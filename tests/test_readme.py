"""The README tells the truth: its step table is the registry's, and CI runs its test command."""

from __future__ import annotations

from workbook.registry import ROOT, steps_table

README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_the_step_table_matches_the_registry():
    """The table between the steps markers is exactly what `python -m workbook list --markdown` prints."""
    block = README.split("<!-- steps:start", 1)[1].split("\n", 1)[1].split("<!-- steps:end -->", 1)[0]
    assert block.strip() == steps_table().strip()


def test_the_quick_start_is_two_commands_and_ci_runs_the_second():
    """The quick start shows `make step-1 run` and `make test`, and .ci/run calls `make test`."""
    quick = README.split("## Quick start", 1)[1].split("```sh", 1)[1].split("```", 1)[0]
    commands = [line.split("#")[0].strip() for line in quick.strip().splitlines()]
    assert commands == ["make step-1 run", "make test"]
    assert "\nmake test " in (ROOT / ".ci/run").read_text() or "\nmake test\n" in (ROOT / ".ci/run").read_text()


def test_every_link_to_a_repository_file_resolves():
    """Relative links in the README point at files that exist."""
    import re

    for target in re.findall(r"\]\(((?!https?://)[^)#]+)\)", README):
        assert (ROOT / target).exists(), f"README links to missing {target}"
