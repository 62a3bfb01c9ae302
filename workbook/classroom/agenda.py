"""The instructor's agendas and coaching notes, built from steps.toml, docs/agendas.toml and the pitfall catalogue.

`python -m workbook agenda` prints the generated parts of docs/instructor.md; `--write` puts them in place
between their markers, `--check` says whether the committed page is current.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

from .. import console
from ..errors import WorkbookError
from ..registry import ROOT, Step, final, load_steps

AGENDAS = ROOT / "docs" / "agendas.toml"
PAGE = ROOT / "docs" / "instructor.md"
SECTIONS = ("agendas", "coaching")


@dataclass(frozen=True)
class Block:
    minutes: int
    what: str  # "set-up", "step 4 · Routing", "Break", …
    mode: str  # "demo", "build" or "" (set-up, breaks)
    checkpoint: str  # the command that puts a lost learner back on track
    show: str  # what is on the projector


@dataclass(frozen=True)
class Agenda:
    slug: str
    title: str
    length: int
    blocks: tuple[Block, ...]

    @property
    def total(self) -> int:
        return sum(block.minutes for block in self.blocks)


def read_definition(path: Path = AGENDAS) -> dict:
    with open(path, "rb") as f:
        return tomllib.load(f)


def _show(step: Step, mode: str, extra: dict) -> str:
    target = "final" if step.id == "final" else f"step-{step.number}"
    special = extra.get(str(step.number), "") if step.id != "final" else ""
    diff = f"`make {target} diff HTML=1`"
    if mode == "demo":
        return f"{diff}; {special or f'`make {target} run` and its page'}"
    goal = f"the goal in steps/{step.id}/STEP.md; {special + '; ' if special else ''}"
    return f"{goal}after the exercise: {diff}"


def _step_block(step: Step, mode: str, extra: dict) -> Block:
    if step.id == "final":
        return Block(step.teach, "the final project", "demo", "`make final run`", _show(step, "demo", extra))
    what = f"step {step.number} · {step.title}"
    if mode == "demo":
        return Block(step.teach, what, f"demo ({step.teach})", f"`make step-{step.number} run`",
                     _show(step, mode, extra))
    return Block(step.minutes, what, f"build ({step.teach} + {step.exercise})",
                 f"`make step-{step.number} start REPLACE=1`", _show(step, mode, extra))


def build_agendas(definition: dict | None = None, steps: list[Step] | None = None) -> list[Agenda]:
    """Lay out each agenda's blocks, with minutes read from the step registry."""
    definition = definition or read_definition()
    steps = steps if steps is not None else load_steps()
    by_number = {step.number: step for step in steps}
    extra = definition.get("show", {})
    agendas = []
    for entry in definition["agenda"]:
        numbers = [s.number for s in steps] if entry["steps"] == "all" else entry["steps"]
        unknown = [n for n in [*numbers, *entry.get("demo", [])] if n not in by_number]
        if unknown:
            raise WorkbookError(f"{AGENDAS.name}: agenda {entry['slug']} names steps {unknown}, "
                                f"which steps.toml does not have")
        breaks = {b["after"]: b for b in entry.get("breaks", [])}
        blocks = [Block(entry["setup"], "set-up", "", "`make preflight`",
                        "the preflight's lines; the Wi-Fi name, or the wheelhouse share")]
        for number in numbers:
            mode = "demo" if number in entry.get("demo", []) else "build"
            blocks.append(_step_block(by_number[number], mode, extra))
            if number in breaks:
                blocks.append(Block(breaks[number]["minutes"], breaks[number]["what"], "", "", ""))
        if entry.get("final") == "demo":
            blocks.append(_step_block(final(), "demo", extra))
        if entry.get("wrap"):
            last = "final" if entry.get("final") else f"step-{numbers[-1]}"
            blocks.append(Block(entry["wrap"], "wrap-up", "", f"`make {last} run`",
                                "`make list`: the steps to take home, each with its notebook"))
        agendas.append(Agenda(entry["slug"], entry["title"], entry["length"], tuple(blocks)))
    return agendas


def _clock(minutes: int) -> str:
    return f"{minutes // 60}:{minutes % 60:02d}"


def agendas_markdown(agendas: list[Agenda]) -> str:
    """Render every agenda as a table of blocks, with the time each starts."""
    out = []
    for agenda in agendas:
        spare = agenda.length - agenda.total
        out += [f"### {agenda.title}", "",
                f"{agenda.total} of {agenda.length} minutes planned" + (f", {spare} to spare." if spare else "."),
                "", "| At | Min | Block | Demo or build (teach + do) | Lost? Back on track with | On the projector |",
                "|---|---:|---|---|---|---|"]
        at = 0
        for block in agenda.blocks:
            out.append(f"| {_clock(at)} | {block.minutes} | {block.what} | {block.mode or '—'} "
                       f"| {block.checkpoint or '—'} | {block.show or '—'} |")
            at += block.minutes
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def coached(definition: dict | None = None, steps: list[Step] | None = None, pitfalls=None) -> dict[int, tuple]:
    """Return, per step, the failures to coach in detail and the catalogue's other ones for that step."""
    from ..doctor.pitfalls import load_pitfalls

    definition = definition or read_definition()
    steps = steps if steps is not None else load_steps()
    pitfalls = pitfalls if pitfalls is not None else load_pitfalls()
    by_slug = {p.slug: p for p in pitfalls}
    chosen = {int(number): slugs for number, slugs in definition.get("coach", {}).items()}
    unknown = sorted({slug for slugs in chosen.values() for slug in slugs} - set(by_slug))
    if unknown:
        raise WorkbookError(f"{AGENDAS.name}: [coach] names {', '.join(unknown)}, which the catalogue does not have")
    placed = {slug for slugs in chosen.values() for slug in slugs}
    notes = {}
    for step in steps:
        own = [p for p in pitfalls if p.step == step.number and p.slug not in placed]
        detailed = [by_slug[slug] for slug in chosen[step.number]] if step.number in chosen else own[:3]
        notes[step.number] = (detailed, [p for p in own if p not in detailed])
    return notes


def _fenced(text: str) -> list[str]:
    return ["  ```text", *(f"  {line}" for line in text.splitlines()), "  ```"]


def coaching_markdown(notes: dict[int, tuple], steps: list[Step] | None = None) -> str:
    """Render the coaching notes: per step, each failure's symptom (verbatim), where it shows, and its fix."""
    steps = steps if steps is not None else load_steps()
    out = []
    for step in steps:
        detailed, others = notes[step.number]
        out += [f"### Step {step.number} · {step.title}", ""]
        if not detailed:
            out += ["No catalogued failure belongs to this step: `make hint` walks a stuck learner through it, "
                    "and `make check` names what is missing.", ""]
        for pitfall in detailed:
            out.append(f"- **{pitfall.title}** ([{pitfall.slug}](troubleshooting.md#{pitfall.slug})). "
                       f"They see it in {pitfall.seen_in}:")
            out += _fenced(pitfall.symptom)
            out += [f"  Fix: {pitfall.fix}",
                    f"  Show it: `make pitfall P={pitfall.slug}`; the doctor names it `[{pitfall.slug}]` "
                    "(`make doctor DIR=workspace`).", ""]
        if others:
            links = ", ".join(f"[{p.title}](troubleshooting.md#{p.slug})" for p in others)
            out += [f"Rarer here: {links}.", ""]
    return "\n".join(out).rstrip() + "\n"


def generated() -> dict[str, str]:
    """Return each generated section of docs/instructor.md, by marker name."""
    steps = load_steps()
    definition = read_definition()
    return {
        "agendas": agendas_markdown(build_agendas(definition, steps)),
        "coaching": coaching_markdown(coached(definition, steps), steps),
    }


def _marker(name: str) -> re.Pattern:
    return re.compile(rf"(<!-- {name}:start[^>]*-->\n)(.*?)(<!-- {name}:end -->)", re.DOTALL)


def updated(page: str, sections: dict[str, str]) -> str:
    """Return the page with each marked section replaced by its generated text."""
    for name, text in sections.items():
        if not _marker(name).search(page):
            raise WorkbookError(f"{PAGE.name} lacks the <!-- {name}:start --> … <!-- {name}:end --> markers")
        page = _marker(name).sub(lambda m, text=text: m.group(1) + "\n" + text + "\n" + m.group(3), page)
    return page


def cmd_agenda(args) -> int:
    sections = generated()
    if not (args.write or args.check):
        print("\n".join(sections[name] for name in SECTIONS), end="")
        return 0
    new = updated(PAGE.read_text(encoding="utf-8"), sections)
    return console.write_or_check(PAGE, new, args.check, "python -m workbook agenda --write")


def add_commands(sub) -> None:
    agenda = sub.add_parser("agenda", help="the instructor's agendas and coaching notes (docs/instructor.md)")
    agenda.add_argument("--write", action="store_true", help="regenerate them in docs/instructor.md")
    agenda.add_argument("--check", action="store_true", help="exit 1 when docs/instructor.md is out of date")
    agenda.set_defaults(func=cmd_agenda)
