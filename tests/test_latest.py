"""`test --latest` checks the newest releases honestly, and the README's compatibility table tells the truth."""

from __future__ import annotations

import datetime
import os
import re
import subprocess
import sys

import pytest
from conftest import run_python
from packaging.markers import Marker
from packaging.version import Version

from workbook.environment import pythons, venv
from workbook.errors import WorkbookError
from workbook.maintainer import latest
from workbook.registry import ROOT, tomllib

README = (ROOT / "README.md").read_text(encoding="utf-8")


def rows() -> dict[str, dict[str, str]]:
    return {row["Stack"]: row for row in latest.parse_block(README)}


def pinned(package: str, python: str) -> str:
    """Return the version uv.lock pins for `package` on this Python, evaluating the lock's resolution markers."""
    environment = {"python_full_version": python, "python_version": ".".join(python.split(".")[:2]),
                   "platform_python_implementation": "CPython", "implementation_name": "cpython"}
    for entry in tomllib.loads((ROOT / "uv.lock").read_text())["package"]:
        if entry["name"] == package.lower():
            markers = entry.get("resolution-markers")
            if not markers or any(Marker(marker).evaluate(environment) for marker in markers):
                return entry["version"]
    raise AssertionError(f"uv.lock pins no {package} for Python {python}")


def test_the_readme_compatibility_table_is_what_record_writes():
    """The block between the compat markers is a table of the locks' row and the newest releases' row."""
    block = README.split(latest.START, 1)[1].split("\n", 1)[1].split(latest.END, 1)[0]
    found = latest.parse_block(README)
    assert block.strip() == latest.render_block(found)
    assert [row["Stack"] for row in found] == list(latest.ROWS.values())
    for row in found:
        assert all(re.fullmatch(r"\d+(\.\d+)+\w*", row[name]) for name in ("Python", *latest.STACK)), row
        assert datetime.date.fromisoformat(row["Checked"]) <= datetime.date.today()
        assert re.fullmatch(r"(\d+ (failed|passed|skipped|xfailed))(, \d+ (passed|skipped|xfailed))*", row["Result"])


def test_the_pinned_row_shows_the_locks_pins():
    """The pinned row's versions are exactly what uv.lock installs on the row's Python."""
    row = rows()[latest.ROWS["pinned"]]
    for package in latest.STACK:
        assert row[package] == pinned(package, row["Python"]), package


def test_the_newest_row_is_no_older_than_the_pins():
    """Every version in the newest-releases row is at least the pinned one, on a Python at least as new."""
    table = rows()
    old, new = table[latest.ROWS["pinned"]], table[latest.ROWS["latest"]]
    for name in ("Python", *latest.STACK):
        assert Version(new[name]) >= Version(old[name]), name


def test_record_rewrites_only_its_own_row(tmp_path):
    """Recording a run replaces that stack's row and leaves the other row and the rest of the README alone."""
    readme = tmp_path / "README.md"
    readme.write_text(README, encoding="utf-8")
    found = latest.versions()
    latest.record("latest", found, "3 passed, 1 xfailed", readme=readme, today="2031-01-02")
    after = readme.read_text(encoding="utf-8")
    table = {row["Stack"]: row for row in latest.parse_block(after)}
    assert table[latest.ROWS["pinned"]] == rows()[latest.ROWS["pinned"]]
    assert table[latest.ROWS["latest"]] == {"Stack": latest.ROWS["latest"], **found, "Checked": "2031-01-02",
                                            "Result": "3 passed, 1 xfailed"}
    assert after.split(latest.START)[0] == README.split(latest.START)[0]
    assert after.split(latest.END)[1] == README.split(latest.END)[1]


def test_outcome_counts_a_real_pytest_report(tmp_path):
    """A JUnit report of one pass, failure, skip and expected failure reads back as those four counts."""
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "test_four.py").write_text(
        "import pytest\n"
        "def test_pass(): pass\n"
        "def test_fail(): assert False\n"
        "def test_skip(): pytest.skip('not here')\n"
        "def test_xfail(): pytest.xfail('known')\n"
    )
    report = tmp_path / "report.xml"
    subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={report}"],
                   cwd=tmp_path, capture_output=True, timeout=120)
    counts = latest.outcome(report)
    assert counts == {"passed": 1, "failed": 1, "skipped": 1, "xfailed": 1}
    assert latest.result_text(counts) == "1 failed, 1 passed, 1 skipped, 1 xfailed"


def test_requirements_free_exactly_the_stack_packages():
    """The latest venv's requirements are pyproject's, with every bound on the five stack packages dropped."""
    from workbook.registry import tomllib

    def name(requirement: str) -> str:
        return re.match(r"[A-Za-z0-9._-]+", requirement).group().lower()

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    declared = [*project["project"]["dependencies"], *project["dependency-groups"]["dev"]]
    relaxed = latest.requirements()
    stack = {package.lower() for package in latest.STACK}
    assert {r for r in relaxed if name(r) in stack} == set(latest.STACK)
    assert [r for r in relaxed if name(r) not in stack] == [r for r in declared if name(r) not in stack]


def test_the_override_python_is_used_and_a_broken_one_is_refused(monkeypatch):
    """WORKBOOK_LATEST_PYTHON names the interpreter; one that does not run gets a one-line error."""
    monkeypatch.setenv(latest.PYTHON_ENV, sys.executable)
    assert latest.find_python() == sys.executable
    with pytest.raises(WorkbookError, match=r"^/nonexistent/python3 \(from --python or WORKBOOK_LATEST_PYTHON\)"):
        latest.find_python("/nonexistent/python3")


def test_the_newest_python_that_runs_is_chosen_and_a_broken_shim_is_passed_over(tmp_path, monkeypatch):
    """On a PATH where newer pythonX.Y are shims that fail, the newest interpreter that runs is chosen."""
    here = sys.version_info[:2]
    (tmp_path / f"python{here[0]}.{here[1]}").symlink_to(sys.executable)
    (low_major, _), (_, high) = pythons.supported()
    for minor in range(here[1] + 1, high + 1):
        shim = tmp_path / f"python{low_major}.{minor}"
        shim.write_text("#!/bin/sh\necho 'pyenv: command not found' >&2\nexit 127\n")
        shim.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("PYENV_ROOT", str(tmp_path / "no-pyenv"))
    monkeypatch.delenv(latest.PYTHON_ENV, raising=False)
    assert latest.find_python() == str(tmp_path / f"python{here[0]}.{here[1]}")


def test_a_latest_venv_is_ready_without_a_lock(tmp_path):
    """A virtualenv stamped by `test --latest` counts as ready, so its `python -m workbook` never installs a lock."""
    python = venv.venv_python(tmp_path)
    python.parent.mkdir(parents=True)
    python.touch()
    assert not venv.is_ready("dev", tmp_path)
    (tmp_path / venv.LATEST_STAMP).write_text(sys.executable)
    assert venv.is_ready("dev", tmp_path)


def test_record_refuses_a_partial_run():
    """`test --record` with pytest arguments is refused in one line: a partial run is not a compatibility check."""
    result = run_python("-m", "workbook", "test", "--record", "-k", "routing")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "workbook: --record writes the whole check into the README: run it without pytest arguments"
    ]


def test_the_pytest_header_names_the_stack_under_test():
    """pytest's header names the Python and stack versions the session runs, as a CI log must show."""
    result = run_python("-m", "pytest", "--collect-only", "tests/test_readme.py")
    found = latest.versions()
    assert f"stack: {latest.versions_line(found)} ({os.path.relpath(sys.prefix, ROOT)})" in result.stdout


def test_ci_runs_the_latest_check_after_make_test():
    """.ci/run runs `make test-latest` after `make test`."""
    lines = [line.strip() for line in (ROOT / ".ci/run").read_text().splitlines()]
    tests = [i for i, line in enumerate(lines) if line.startswith("make test")]
    assert [lines[i].split()[1] for i in tests] == ["test", "test-latest"]

