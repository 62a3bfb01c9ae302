"""The one exception type the runner raises for things a learner can fix, and the one line a failed server gets."""

import re


class WorkbookError(Exception):
    """A problem with a one-line explanation and what to do about it."""


def summarize_failure(log: str) -> str:
    """Pick the line of a server log that best says why it did not start."""
    lines = [line.strip() for line in log.splitlines() if line.strip()]
    for pattern in (
        r"\([\w.]+\.E\d+\)",  # a system check error such as (daphne.E001)
        r"^\w+(\.\w+)*(Error|Exception|Exit)\b.*",  # the last line of a traceback
        r"[Ee]rror|[Cc]ouldn't|[Cc]annot",
    ):
        hits = [line for line in lines if re.search(pattern, line)]
        if hits:
            return hits[-1]
    return lines[-1] if lines else "it printed nothing"
