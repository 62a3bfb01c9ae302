"""PYTHONPATH for a child process: the directories it must import from first, then whatever the environment had."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path


def importable(env: Mapping[str, str], *directories: Path | str) -> dict[str, str]:
    """Return a copy of `env` whose PYTHONPATH starts with `directories` (the checkout, a project), then what it had.

    A child process started this way imports `workbook` (or the project's own modules) from there, whatever its
    Python and working directory.
    """
    path = os.pathsep.join(filter(None, [*map(str, directories), env.get("PYTHONPATH")]))
    return {**env, "PYTHONPATH": path}
