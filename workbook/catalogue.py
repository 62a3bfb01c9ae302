"""The failure catalogue: each failure's symptom, cause and fix, keyed by slug, read from pitfalls/pitfalls.toml.

One source for the hints of `make check` (`hint_for`), the doctor's fixes, the pitfall lab and the troubleshooting
page (workbook/doctor/troubleshooting.py). The file's header says what each field means.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields
from functools import lru_cache
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

from .errors import WorkbookError

ROOT = Path(__file__).resolve().parent.parent  # not from registry, which imports this module

CATALOGUE = ROOT / "pitfalls" / "pitfalls.toml"
PAGE = "docs/troubleshooting.md"
KINDS = ("failure", "pitfall")  # the order hints are tried in


@dataclass(frozen=True)
class Entry:
    """One failure: what the learner sees, why, and the one-line fix; a pitfall also says how to reproduce it."""

    kind: str  # "pitfall" (the lab reproduces it) or "failure"
    slug: str
    title: str
    cause: str
    fix: str
    symptom: str = ""
    seen_in: str = ""
    heading: str = ""
    note: str = ""
    more: str = ""
    doctor: str = ""
    reproduce: str = ""
    index: tuple[tuple[str, str], ...] = ()
    match: str = ""
    hint: str = ""
    step: int | None = None
    trigger: str = ""
    server: str = "runserver"
    migrate: bool = True

    @property
    def anchor(self) -> str:
        """The link to this entry on the troubleshooting page."""
        return f"{PAGE}#{self.slug}"

    def hint_from(self, match: re.Match) -> str:
        """Render this entry's hint for the evidence `match` found: groups filled in, {fix} replaced."""
        template = (self.hint or self.fix).replace("{fix}", self.fix.replace("\\", "\\\\"))
        return match.expand(template)


_NAMES = {f.name for f in fields(Entry)} - {"kind"}


def _entry(kind: str, raw: dict, where: Path) -> Entry:
    unknown = set(raw) - _NAMES
    slug = raw.get("slug", "?")
    if unknown:
        raise WorkbookError(f"{where.name}: [[{kind}]] {slug} has unknown field(s) {', '.join(sorted(unknown))}: "
                            f"see the file's header for the fields")
    missing = {"slug", "title", "cause", "fix"} - set(raw)
    if kind == "pitfall":
        missing |= {"step", "symptom", "seen_in", "trigger"} - set(raw)
    if missing:
        raise WorkbookError(f"{where.name}: [[{kind}]] {slug} lacks {', '.join(sorted(missing))}")
    index = tuple(tuple(row) for row in raw.pop("index", ()))
    return Entry(kind=kind, index=index, **raw)


@lru_cache(maxsize=4)
def load(path: Path = CATALOGUE) -> dict[str, Entry]:
    """Read every entry of the catalogue by slug: failures first, then pitfalls, each in file order."""
    with open(path, "rb") as f:
        data = tomllib.load(f)
    entries: dict[str, Entry] = {}
    for kind in KINDS:
        for raw in data.get(kind, []):
            entry = _entry(kind, dict(raw), path)
            if entry.slug in entries:
                raise WorkbookError(f"{path.name}: the slug {entry.slug} appears twice: give each entry its own")
            entries[entry.slug] = entry
    return entries


def entry(slug: str) -> Entry:
    """Return the catalogue entry called `slug`; an unknown slug is a bug in the caller, named as such."""
    try:
        return load()[slug]
    except KeyError:
        raise WorkbookError(f"{slug!r} is not in {CATALOGUE.name}: add an entry for it") from None


def fix(slug: str) -> str:
    """Return the one-line fix for `slug`."""
    return entry(slug).fix


def with_more(fix: str, more: str = "") -> str:
    """Join a fix and what the page adds after it into sentences."""
    fix = fix if fix.endswith((".", "!", "?")) or not more else fix + "."
    return f"{fix} {more}" if more else fix


def hint_for(evidence: str, default: str = "") -> str:
    """Return the hint of the first entry whose `match` is found in the evidence (an error, a log), or `default`."""
    for item in load().values():
        if item.match:
            found = re.search(item.match, evidence)
            if found:
                return item.hint_from(found)
    return default
