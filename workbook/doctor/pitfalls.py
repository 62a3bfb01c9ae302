"""The pitfall lab: broken variants of a step, kept in pitfalls/ as patches and materialised on demand.

The failure catalogue, `pitfalls/pitfalls.toml`, lists each pitfall (step, symptom, cause, fix) as a [[pitfall]];
`pitfalls/<slug>.patch` is the mistake as a unified diff against that step. `materialise(pitfall)` copies the step
and applies the patch, and refuses when the step has drifted from the patch's context.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from dataclasses import dataclass, fields
from pathlib import Path

from .. import catalogue, patches
from ..errors import WorkbookError
from ..registry import ROOT, Step, get_step, project_files

PITFALLS_DIR = ROOT / "pitfalls"
REGISTRY = catalogue.CATALOGUE


@dataclass(frozen=True)
class Pitfall:
    slug: str
    step: int
    title: str
    symptom: str
    seen_in: str
    cause: str
    fix: str
    server: str = "runserver"
    trigger: str = ""
    migrate: bool = True  # False: served without migrating its database first, as the pitfall needs
    more: str = ""  # what the troubleshooting page adds after the fix

    @property
    def env(self) -> dict[str, str]:
        """The environment the lab serves the broken variant with."""
        return {} if self.migrate else {"WORKBOOK_MIGRATE": "0"}

    @property
    def base(self) -> Step:
        return get_step(self.step)

    @property
    def patch(self) -> Path:
        return PITFALLS_DIR / f"{self.slug}.patch"

    @property
    def anchor(self) -> str:
        """The link to this pitfall's entry on the troubleshooting page."""
        return f"{catalogue.PAGE}#{self.slug}"

    def hunks(self) -> dict[str, list[patches.Hunk]]:
        """Read the patch: its hunks by file (none when only the way the step is run is wrong)."""
        if not self.patch.is_file():
            return {}
        return patches.parse(self.patch.read_text(encoding="utf-8"), _shown(self.patch))

    def overlay_files(self) -> list[str]:
        """List the files this pitfall changes in its step (none when only the way it is run is wrong)."""
        return sorted(self.hunks())

    def patched(self) -> dict[str, bytes]:
        """Return each file the patch changes as the broken variant has it; refuse if the step has drifted."""
        step_files, remedy = set(project_files(self.base.path)), f"update {_shown(self.patch)} to match the step"
        changed = {}
        for name, hunks in self.hunks().items():
            if name not in step_files:
                raise WorkbookError(f"pitfall {self.slug} patches {name}, which step {self.step} lacks: {remedy}")
            where = f"pitfall {self.slug}: {name} of steps/{self.base.id}"
            text = (self.base.path / name).read_bytes().decode("utf-8")
            changed[name] = patches.apply(text, hunks, where, remedy).encode("utf-8")
        return changed


def _shown(path: Path) -> str:
    return path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else str(path)


def load_pitfalls(registry: Path = REGISTRY) -> list[Pitfall]:
    """Read every pitfall (the [[pitfall]] entries of the failure catalogue), in order."""
    names = [f.name for f in fields(Pitfall)]
    return [Pitfall(**{name: getattr(entry, name) for name in names})
            for entry in catalogue.load(registry).values() if entry.kind == "pitfall"]


def get_pitfall(slug: str) -> Pitfall:
    """Return the pitfall called `slug`, or say which exist."""
    pitfalls = load_pitfalls()
    for pitfall in pitfalls:
        if pitfall.slug == slug:
            return pitfall
    names = ", ".join(p.slug for p in pitfalls)
    raise WorkbookError(f"there is no pitfall {slug!r}: choose one of {names}")


def materialise(pitfall: Pitfall | str, parent: Path | None = None) -> Path:
    """Copy the pitfall's step into a new directory, apply its patch, and return the project path."""
    pitfall = get_pitfall(pitfall) if isinstance(pitfall, str) else pitfall
    changed = pitfall.patched()  # before anything is written: a drifted patch leaves no half-made copy
    parent = Path(parent) if parent else Path(tempfile.mkdtemp(prefix="workbook-pitfall-"))
    project = parent / pitfall.slug
    if project.exists():
        raise WorkbookError(f"{project} already exists: remove it or choose another directory")
    for name in project_files(pitfall.base.path):
        (project / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(pitfall.base.path / name, project / name)
    for name, content in changed.items():
        (project / name).write_bytes(content)
    return project


# --- the command --------------------------------------------------------------------------------------
def describe(pitfall: Pitfall) -> str:
    """Render a pitfall as the learner should read it: symptom, cause, fix, and how to see it."""
    indented = "\n".join("    " + line for line in pitfall.symptom.splitlines())
    return (
        f"{pitfall.slug} · {pitfall.title} (step {pitfall.step}, {pitfall.server})\n"
        f"  do: {pitfall.trigger}\n  you see ({pitfall.seen_in}):\n{indented}\n"
        f"  cause: {pitfall.cause}\n  fix: {catalogue.with_more(pitfall.fix, pitfall.more)}\n"
        f"  more: {pitfall.anchor}"
    )


def cmd_pitfall(args) -> int:
    if args.action == "list" or not args.slug:
        for pitfall in load_pitfalls():
            print(f"{pitfall.slug:<30} step {pitfall.step}  {pitfall.title}")
        print("\nShow one with `python -m workbook pitfall show SLUG`, run it with `pitfall run SLUG`.")
        return 0
    pitfall = get_pitfall(args.slug)
    if args.action == "show":
        from ..diffs import colour

        pitfall.patched()  # the patch is shown only while it still applies to its step
        print(describe(pitfall))
        if pitfall.patch.is_file():
            text = pitfall.patch.read_text(encoding="utf-8")
            print(f"\n{_shown(pitfall.patch)}, against steps/{pitfall.base.id}/:")
            print(colour(text) if sys.stdout.isatty() else text, end="")
        else:
            print("  (no file changes: only the way it is run differs)")
        return 0
    if args.action == "make":
        print(materialise(pitfall, Path(args.dir) if args.dir else None))
        return 0
    from ..servers.foreground import foreground
    from ..servers.listen import given, read_port
    from ..servers.server import Server

    args.port = read_port(given("PORT", args.port))
    project = materialise(pitfall)
    print(describe(pitfall) + f"\n\nworkbook: serving the broken variant from {project} (Ctrl-C stops it)\n")
    label = f"pitfall-{pitfall.slug}"
    if pitfall.server == "daphne-https":
        from ..servers.https import HttpsServer

        server = HttpsServer(project, port=args.port, label=label, env=pitfall.env)
    else:
        server = Server(project, how=pitfall.server, port=args.port, label=label, env=pitfall.env)
    try:
        # A plain `kill` ends the run as cleanly as Ctrl-C: the temp copy goes too.
        return foreground(server, lambda: [f"workbook: {server.http_url} (websocket: {server.ws_url()})"],
                          stopped=None, died=None)
    finally:
        shutil.rmtree(project.parent, ignore_errors=True)


def add_commands(sub) -> None:
    pitfall = sub.add_parser("pitfall", help="the pitfall lab: list, show, make or run a broken variant")
    pitfall.add_argument("action", choices=["list", "show", "make", "run"], nargs="?", default="list")
    pitfall.add_argument("slug", nargs="?", help="which pitfall (`pitfall list` names them)")
    pitfall.add_argument("dir", nargs="?", help="with make: where to write it (default: a new temp directory)")
    pitfall.add_argument("--port", help="where to serve it (default: $PORT, else 8000)")
    pitfall.set_defaults(func=cmd_pitfall)
