"""Run a command inside the project's virtualenv: re-execute into it, or set it up with the standard library alone.

`python -m workbook …` may start on any Python; everything but `setup` (and `preflight`) runs again inside .venv.
"""

from __future__ import annotations

import argparse
import os
import subprocess

from . import venv
from .pythonpath import importable


def reexec_in_venv(argv: list[str]) -> int:
    """Run this same command with the virtualenv's python, creating the virtualenv first if needed."""
    python = venv.ensure("base")
    cmd = [str(python), "-m", "workbook", *argv]
    env = importable(os.environ, venv.ROOT)
    if os.name != "nt":
        os.execve(str(python), cmd, env)
    try:
        return subprocess.call(cmd, env=env)
    except KeyboardInterrupt:
        return 130


def bare_setup(argv: list[str]) -> int:
    """`setup` from a Python outside the virtualenv: standard library only."""
    parser = argparse.ArgumentParser(prog="python -m workbook setup")
    parser.add_argument("--dev", action="store_true")
    parser.add_argument("--wheelhouse")
    args = parser.parse_args(argv)
    venv.ensure("dev" if args.dev else "base", wheelhouse=args.wheelhouse)
    return 0
