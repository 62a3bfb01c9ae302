"""Generate docs/troubleshooting.md from the failure catalogue: `python -m workbook docs` (`--check` to compare)."""

from __future__ import annotations

import re
import textwrap

from .. import catalogue, console
from ..catalogue import Entry
from ..registry import ROOT

WIDTH = 116
INTRO = """\
# Troubleshooting: find the message you see

<!-- Generated from pitfalls/pitfalls.toml by `python -m workbook docs`: edit the catalogue, not this page. -->

Look up the exact text your browser console, server log or client printed. Each entry says what you see,
why it happens, the fix, the doctor command that names it, and the pitfall in the lab that reproduces it.

Two commands find most of these for you:

```
python -m workbook doctor path/to/your/project          # make doctor DIR=path/to/your/project
python -m workbook doctor ws://127.0.0.1:8000/ws/chat/  # make doctor  (probes the server you are running)
```

The first loads your project the way daphne and runserver do (in a separate process) and reads its pages; the
second talks to a running server like a browser would. Both print one line per problem with its fix and exit 1
if there is a problem, 0 if it is healthy. Add `--frames` to the probe to also send a non-JSON frame and a frame
without `"message"`.

Every pitfall below is also a broken variant of a step (most of them of step 5) you can run:
`python -m workbook pitfall show SLUG` prints it with its patch (the mistake, as a diff against the step),
`python -m workbook pitfall run SLUG` (or `make pitfall P=SLUG`) serves it, and
[notebooks/pitfalls.ipynb](../notebooks/pitfalls.ipynb) walks through them.
Ports below read 8000; yours may differ.
"""
MORE = """\
## What else the doctor and `make check` may say

These have no broken variant in the lab: the doctor's probe names them, or `make check` prints their fix as its
hint when a check's output shows the message.
"""


def _wrap(text: str, first: str = "", rest: str = "") -> str:
    """Wrap a paragraph at WIDTH or a little less, so that no line starts like Markdown syntax (a list, a quote)."""
    for width in range(WIDTH, WIDTH - 30, -1):
        lines = textwrap.wrap(text, width, initial_indent=first, subsequent_indent=rest, break_long_words=False,
                              break_on_hyphens=False)
        if not any(re.match(r"([-+*>]|#{1,6}|\d+[.)])(\s|$)", line[len(rest):]) for line in lines[1:]):
            return "\n".join(lines)
    return first + text


def _sentence(text: str) -> str:
    """End the text with a full stop unless it already ends a sentence (before a closing bracket or quote)."""
    return text if text.rstrip(")`'\"").endswith((".", "!", "?")) else text + "."


def _quoted(entry: Entry) -> list[str]:
    """The symptom's verbatim lines; lines in parentheses (or indented) describe rather than quote."""
    return [line for line in entry.symptom.splitlines() if line and not line.startswith(("(", " "))]


def _code(text: str) -> str:
    ticks = "``" if "`" in text else "`"
    pad = " " if ticks == "``" else ""
    return f"{ticks}{pad}{text}{pad}{ticks}".replace("|", "\\|")


def index_rows(entry: Entry) -> list[tuple[str, str]]:
    """The entry's rows in the page's index: its own, or its symptom's first quoted line and where it shows."""
    if entry.index:
        return [tuple(row) for row in entry.index]
    quoted = _quoted(entry)
    return [(_code(quoted[0]), entry.seen_in.split(";")[0].strip() or "—")] if quoted else []


def render_entry(entry: Entry) -> str:
    """Render one entry: anchor, heading, the quoted symptom, a note, then why, fix, doctor and how to reproduce."""
    parts = [f'<a id="{entry.slug}"></a>\n### {entry.heading or entry.title}']
    quoted = _quoted(entry)
    if quoted:
        parts.append("```\n" + "\n".join(quoted) + "\n```")
    if entry.note:
        parts.append(_wrap(entry.note))
    bullets = [_wrap(f"**Why:** {_sentence(entry.cause)}", "- ", "  "),
               _wrap(f"**Fix:** {_sentence(catalogue.with_more(entry.fix, entry.more))}", "- ", "  ")]
    if entry.doctor:
        bullets.append(_wrap(f"**Doctor:** {_sentence(entry.doctor)}", "- ", "  "))
    if entry.kind == "pitfall":
        how = f"`python -m workbook pitfall show {entry.slug}`"
        if entry.reproduce:
            how += (" " if entry.reproduce.startswith("(") else "; ") + entry.reproduce
        if (ROOT / "pitfalls" / f"{entry.slug}.patch").is_file():
            how += f" ([patch](../pitfalls/{entry.slug}.patch))"
        bullets.append(_wrap(f"**Reproduce:** {_sentence(how)}", "- ", "  "))
    parts.append("\n".join(bullets))
    return "\n\n".join(parts)


def render() -> str:
    """Render the whole troubleshooting page from the catalogue."""
    entries = list(catalogue.load().values())
    pitfalls = sorted((e for e in entries if e.kind == "pitfall"), key=lambda e: e.step)
    others = [e for e in entries if e.kind != "pitfall"]
    rows: dict[tuple[str, str], list[str]] = {}
    for entry in [*pitfalls, *others]:
        for row in index_rows(entry):
            rows.setdefault(row, []).append(entry.slug)
    table = ["| The message you see | Where | Entry |", "|---|---|---|"]
    table += [f"| {message} | {where} | {', '.join(f'[{s}](#{s})' for s in slugs)} |"
              for (message, where), slugs in rows.items()]
    sections = [INTRO, "## Index by message\n\n" + "\n".join(table) + "\n", "## The pitfalls\n"]
    sections += [render_entry(e) + "\n" for e in pitfalls]
    sections += [MORE] + [render_entry(e) + "\n" for e in others]
    return "\n".join(sections)


def cmd_docs(args) -> int:
    return console.write_or_check(ROOT / catalogue.PAGE, render(), args.check, "python -m workbook docs")


def add_commands(sub) -> None:
    """Add `docs`: the troubleshooting page, generated from the failure catalogue."""
    docs = sub.add_parser("docs", help="write docs/troubleshooting.md from the failure catalogue (pitfalls.toml)")
    docs.add_argument("--check", action="store_true", help="only compare: exit 1 when the page is out of date")
    docs.set_defaults(func=cmd_docs)
