"""The project's habits: ruff is clean and runs in CI, `make test` names its slowest tests, headers carry no issue."""

from __future__ import annotations

import re

from conftest import run_python

from workbook.maintainer.testrun import SLOWEST, WORKERS, pytest_args, with_durations
from workbook.registry import ROOT


def test_the_code_is_lint_clean_through_the_workbook_lint_command():
    """`python -m workbook lint` (what `make lint` runs) passes ruff on workbook, tests and bench."""
    result = run_python("-m", "workbook", "lint")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "All checks passed" in result.stdout


def test_ci_lints_before_it_tests():
    """.ci/run runs `make lint` before `make test`."""
    commands = [line.split()[:2] for line in (ROOT / ".ci" / "run").read_text().splitlines()
                if line.startswith("make ")]
    assert ["make", "lint"] in commands
    assert commands.index(["make", "lint"]) < commands.index(["make", "test"])


def test_make_lint_is_listed_in_the_help():
    """The Makefile has a public `lint` target that hands off to `python -m workbook lint`."""
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^lint: .*## ", makefile, re.M)
    assert "-m workbook lint" in makefile


def test_the_test_command_names_the_slowest_tests():
    """`python -m workbook test` ends with pytest's table of the slowest tests, with workers or without."""
    # The table is asked for whatever the workers, so one real run without them (no xdist start-up) shows it.
    for workers in ("0", "2", "auto"):
        given = with_durations(pytest_args(["-q"], environ={WORKERS: workers}))
        assert given.count(f"--durations={SLOWEST}") == 1, given
    assert with_durations(["--durations=3", "-q"]) == ["--durations=3", "-q"]
    result = run_python("-m", "workbook", "test", "tests/test_imports.py", "-q", "-k", "cycle_finder",
                        "-p", "no:cacheprovider", env={WORKERS: "0"})
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"slowest 15 durations", result.stdout)
    assert "bringing up nodes" not in result.stdout  # no xdist workers were started


def test_no_makefile_section_header_names_an_issue():
    """Section headers in the Makefile say what the section holds, not which issue added it."""
    headers = [line for line in (ROOT / "Makefile").read_text().splitlines() if line.startswith("# ---")]
    assert headers
    assert not [line for line in headers if re.search(r"\(issue \d+\)", line)]
