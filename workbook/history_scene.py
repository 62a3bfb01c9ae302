"""The screenshot of a step that replays history (step 10 on): alice talks, then bob's page joins and catches up."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from .registry import project_files

ALICE, BOB = ("alice", "alice-password"), ("bob", "bob-password")


def replays_history(project: Path) -> bool:
    """Tell whether a project saves its messages and replays them to newcomers (it has the history command)."""
    return (Path(project) / "chat" / "management" / "commands" / "history.py").is_file()


@contextlib.contextmanager
def fresh_copy(project: Path) -> Iterator[Path]:
    """Copy the project's files (not its database) into a temporary directory, removed afterwards."""
    parent = Path(tempfile.mkdtemp(prefix="workbook-scene-"))
    try:
        copy = parent / Path(project).name
        for name in project_files(Path(project)):
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(Path(project) / name, copy / name)
        yield copy
    finally:
        shutil.rmtree(parent, ignore_errors=True)
