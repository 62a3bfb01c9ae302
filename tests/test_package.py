"""The workbook is an installable package set up by `uv sync --locked`: nothing reaches it through sys.path."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

from conftest import need

from workbook.environment import venv
from workbook.registry import ROOT


def test_no_notebook_touches_sys_path():
    """Every notebook imports workbook as an installed package, without a cell that edits sys.path."""
    notebooks = sorted((ROOT / "notebooks").glob("*.ipynb"))
    assert notebooks
    for path in notebooks:
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        code = "\n".join("".join(cell["source"]) for cell in cells if cell["cell_type"] == "code")
        assert "sys.path" not in code, f"{path.name} edits sys.path: `from workbook import …` works as it is"
        assert "from workbook" in code or "import workbook" in code, path.name


def test_the_venv_imports_this_checkouts_workbook_from_any_folder(tmp_path):
    """.venv's python, started outside the repository with no PYTHONPATH, imports workbook from this checkout."""
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    done = subprocess.run([str(venv.venv_python()), "-c", "import workbook; print(workbook.__file__)"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(ROOT / "workbook" / "__init__.py")


def test_a_pyproject_out_of_step_with_the_lock_stops_the_setup_in_one_line(tmp_path):
    """A dependency removed from pyproject.toml without `uv lock` stops the set-up with one line naming `uv lock`."""
    uv = venv.installed_uv()
    need(uv is not None, "uv", "install it (https://docs.astral.sh/uv/)")
    copy = tmp_path / "workbook-copy"
    copy.mkdir()
    for name in ("uv.lock", "README.md"):
        shutil.copy(ROOT / name, copy / name)
    shutil.copytree(ROOT / "workbook", copy / "workbook", ignore=shutil.ignore_patterns("__pycache__"))
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert '    "uvicorn>=0.30",\n' in pyproject
    (copy / "pyproject.toml").write_text(pyproject.replace('    "uvicorn>=0.30",\n', ""), encoding="utf-8")
    env = {**os.environ, "WORKBOOK_VENV": str(tmp_path / "venv")}
    for name in ("VIRTUAL_ENV", "PYTHONPATH"):
        env.pop(name, None)
    python = getattr(sys, "_base_executable", None) or sys.executable
    done = subprocess.run([python, "-m", "workbook", "setup"], cwd=copy, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 1, done.stderr
    assert done.stderr.splitlines()[-1] == (
        "workbook: uv.lock does not match pyproject.toml: run `uv lock` (README: adding a package), "
        "then run the same command again"
    )
    assert "needs to be updated" in (copy / ".workbook" / "logs" / "setup.log").read_text()


def test_the_uv_there_is_is_the_one_on_path_else_the_one_set_up_bootstrapped(tmp_path, monkeypatch):
    """A machine without uv on PATH has the locked uv in .workbook/tools/ after its first set-up: that one counts."""
    tools, on_path = tmp_path / "tools", tmp_path / "path"
    on_path.mkdir()
    monkeypatch.setenv("PATH", str(on_path))
    assert venv.installed_uv(tools) is None
    bootstrapped = tools / "bin" / "uv"
    bootstrapped.parent.mkdir(parents=True)
    bootstrapped.write_text("#!/bin/sh\n")
    bootstrapped.chmod(0o755)
    assert venv.installed_uv(tools) == str(bootstrapped)
    (on_path / "uv").write_text("#!/bin/sh\n")
    (on_path / "uv").chmod(0o755)
    assert venv.installed_uv(tools) == str(on_path / "uv")


def test_a_child_imports_from_the_given_directories_first_then_from_what_pythonpath_had():
    """importable() puts the checkout or a project first on PYTHONPATH, keeps what was there, and copies the rest."""
    from pathlib import Path

    from workbook.environment.pythonpath import importable

    sep = os.pathsep
    assert importable({"HOME": "/h"}, "/checkout") == {"HOME": "/h", "PYTHONPATH": "/checkout"}
    had = {"PYTHONPATH": f"/mine{sep}/theirs"}
    both = importable(had, "/project", Path("/checkout"))["PYTHONPATH"]
    assert both == sep.join(["/project", str(Path("/checkout")), "/mine", "/theirs"])
    assert importable({"PYTHONPATH": ""}, "/checkout")["PYTHONPATH"] == "/checkout"
    assert had == {"PYTHONPATH": f"/mine{sep}/theirs"}  # the caller's environment is left as it was
