"""The workbook runs on every supported Python (3.10 to 3.13), not only the one that runs the tests."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import textwrap

import pytest
from conftest import need

from workbook.registry import ROOT
from workbook.server import TIMEOUT

OTHER_PYTHONS = ["3.10", "3.12", "3.13"]


def find_python(version: str) -> str | None:
    """Find a working interpreter for `version`, in pyenv or on PATH (a pyenv shim may not work)."""
    pyenv = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    candidates = sorted(glob.glob(f"{pyenv}/versions/{version}.*/bin/python{version}"))[::-1]
    candidates += [found] if (found := shutil.which(f"python{version}")) else []
    for candidate in candidates:
        if subprocess.run([candidate, "-c", "pass"], capture_output=True).returncode == 0:
            return candidate
    return None


@pytest.mark.parametrize("version", OTHER_PYTHONS, ids=[f"python{v}" for v in OTHER_PYTHONS])
def test_step_4_echoes_on_python(version, tmp_path):
    """A fresh venv on this Python installs the lock, runs step 4 under daphne, and echoes."""
    python = find_python(version)
    need(python is not None, f"Python {version}", f"install it (e.g. `pyenv install {version}`)")
    env = {**os.environ, "WORKBOOK_VENV": str(tmp_path / "venv"), "PYTHONPATH": str(ROOT)}
    env.pop("VIRTUAL_ENV", None)
    setup = subprocess.run([python, "-m", "workbook", "setup"], cwd=ROOT, env=env, capture_output=True,
                           text=True, timeout=300)
    assert setup.returncode == 0, setup.stderr
    script = textwrap.dedent("""
        import asyncio, sys
        from workbook import Server, get_step, client
        with Server(get_step(4), how="daphne") as server:
            reply = asyncio.run(client.echo(server.ws_url(), "hi", quiet=True))
        print(sys.version_info[:2], reply)
    """)
    venv_python = tmp_path / "venv" / "bin" / "python"
    run = subprocess.run([str(venv_python), "-c", script], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=TIMEOUT * 3)
    assert run.returncode == 0, run.stderr
    major, minor = version.split(".")
    assert run.stdout.strip() == f"({major}, {minor}) {{'message': 'hi'}}"
