"""The one exception type the runner raises for things a learner can fix."""


class WorkbookError(Exception):
    """A problem with a one-line explanation and what to do about it."""
