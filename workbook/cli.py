"""The command line: `python -m workbook list | run N | diff A [B] | scope N | stop | setup | test`."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import subprocess
import sys
from pathlib import Path

from .environment import venv
from .environment.reexec import bare_setup, reexec_in_venv
from .errors import WorkbookError

DEV_COMMANDS = {"test", "lint"}
CORE_COMMANDS = {"list", "run", "diff", "scope", "stop", "setup", "test", "lint"}  # wired here, not in a module
LINTED = ("workbook", "tests", "bench")  # what `make lint` checks with ruff
# Modules that add their own subcommands: each has `add_commands(subparsers)` and may list `DEV_COMMANDS`
# (commands that need the dev virtualenv). They import heavy packages lazily, inside their commands.
COMMAND_MODULES = (
    "notebooks.jupyter", "browser", "doctor.command", "learner.commands", "maintainer.bench", "servers.redis", "users",
    "environment.wheelhouse",
)


def _command_modules():
    for name in COMMAND_MODULES:
        if importlib.util.find_spec(f"workbook.{name}") is not None:
            module = importlib.import_module(f"workbook.{name}")
            if hasattr(module, "add_commands"):
                yield module


# The troubleshooting page from the failure catalogue, and the class's room with its terminal client.
COMMAND_MODULES += ("doctor.troubleshooting", "classroom.room", "classroom.chat")


# The instructor's agendas and the day-before preflight.
COMMAND_MODULES += ("classroom.agenda", "classroom.preflight")


def cmd_list(args) -> int:
    from .registry import load_steps, steps_table

    if args.markdown:
        print(steps_table())
        return 0
    print(f"{'step':<5} {'title':<22} {'teach':>5} {'do':>3}  idea")
    for step in load_steps():
        print(f"{step.number:<5} {step.title:<22} {step.teach:>5} {step.exercise:>3}  {step.goal}")
    print("\nRun one with `make step-N run`; build it yourself with `make step-N start` (minutes: teach, do).")
    print("`make final run` serves the finished, hardened project in final/ (`make final diff`: what it adds).")
    return 0


def cmd_run(args) -> int:
    from .servers.run import cmd_run as run

    return run(args)


def cmd_diff(args) -> int:
    from .diffs import as_html, unified
    from .registry import get_step, previous

    new = get_step(args.b if args.b is not None else args.a)
    old = get_step(args.a) if args.b is not None else previous(new)
    if old is None:
        raise WorkbookError("step 0 is the baseline: there is nothing before it to compare with")
    if args.projector:
        from .classroom.diff_html import cmd_projector

        return cmd_projector(old, new, args)
    if args.html:
        Path(args.html).write_text(str(as_html(old, new)), encoding="utf-8")
        print(f"workbook: wrote {args.html}")
        return 0
    color = args.color == "always" or (args.color == "auto" and sys.stdout.isatty())
    after = "the final project" if new.id == "final" else f"step {new.number} ({new.id})"
    print(f"# step {old.number} ({old.id}) → {after}")
    sys.stdout.write(unified(old, new, color=color))
    return 0


def cmd_scope(args) -> int:
    from .communicator import drive
    from .registry import get_step

    step = get_step(args.step)
    report = drive(step, [])
    print(f"# {step.label}: what the consumer printed when a test client connected")
    print(report["printed"] or "(nothing: this step's consumer does not print the scope)")
    return 0


def cmd_stop(args) -> int:
    import json

    from .servers.ports import pid_alive
    from .servers.process import interrupt_guard
    from .state import STATE_DIR

    stopped = 0
    for state_file in sorted((STATE_DIR / "run").glob("*.json")):
        if args.port and state_file.stem != str(args.port):
            continue
        state = json.loads(state_file.read_text())
        pid = state.get("pid", -1)
        if pid_alive(pid):
            interrupt_guard(pid)
            print(f"workbook: stopped {state.get('label')} on port {state_file.stem}")
            stopped += 1
        state_file.unlink(missing_ok=True)
    if not stopped:
        print("workbook: no workbook server is running")
    return 0


def cmd_setup(args) -> int:
    venv.ensure("dev" if args.dev else "base", wheelhouse=args.wheelhouse)
    return 0


def cmd_test(args) -> int:
    from .maintainer.testrun import pytest_args, with_durations

    given = with_durations(pytest_args(args.pytest_args))
    return subprocess.call([sys.executable, "-m", "pytest", *given], cwd=venv.ROOT)


def cmd_lint(args) -> int:
    return subprocess.call([sys.executable, "-m", "ruff", "check", *LINTED], cwd=venv.ROOT)


def build_parser(modules: bool = True) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m workbook",
        description="Run, compare and test the Django Channels workbook's steps.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    listing = sub.add_parser("list", help="list the steps")
    listing.add_argument("--markdown", action="store_true", help="print the README's step table")
    listing.set_defaults(func=cmd_list)

    run = sub.add_parser("run", help="run a step's server in the foreground")
    run.add_argument("step", help="step number, e.g. 4")
    # Read and checked in cmd_run, so a mistyped PORT or HOST gets one line, not a traceback or a usage dump.
    run.add_argument("--port", help="where to listen (default: $PORT, else 8000)")
    run.add_argument("--host", help="127.0.0.1 (default: $HOST, else this) or 0.0.0.0 to let other machines join")
    run.add_argument("--server", choices=["runserver", "daphne", "uvicorn"],
                     help="runserver (the steps' default, reloads on save) or the daphne (final's default)/uvicorn CLI")
    run.add_argument("--no-reload", action="store_true", help="do not restart on code changes")
    run.add_argument("--trace", action="store_true",
                     help="print every websocket event the application receives and sends (make … run TRACE=1)")
    run.set_defaults(func=cmd_run)

    diff = sub.add_parser("diff", help="show what changed: `diff 4` (from step 3) or `diff 2 4`")
    diff.add_argument("a")
    diff.add_argument("b", nargs="?")
    diff.add_argument("--html", metavar="FILE", help="write an HTML diff to FILE")
    diff.add_argument("--color", choices=["auto", "always", "never"], default="auto")
    diff.add_argument("--projector", action="store_true",
                      help="write a large-type, side-by-side HTML page into build/diffs/ (make step-N diff HTML=1)")
    diff.add_argument("--screenshot", metavar="PNG", help="with --projector: also save how Chromium renders it")
    diff.set_defaults(func=cmd_diff)

    scope = sub.add_parser("scope", help="connect to a step's consumer in-process and print what it prints")
    scope.add_argument("step")
    scope.set_defaults(func=cmd_scope)

    stop = sub.add_parser("stop", help="stop workbook servers left running (all, or --port N)")
    stop.add_argument("--port", type=int)
    stop.set_defaults(func=cmd_stop)

    setup = sub.add_parser("setup", help="create .venv from uv.lock")
    setup.add_argument("--dev", action="store_true", help="also install what the tests need")
    setup.add_argument("--wheelhouse", help="install offline from this wheelhouse (folder or .tar)")
    setup.set_defaults(func=cmd_setup)

    test = sub.add_parser("test", help="run the test suite (arguments go to pytest); --fast: no notebooks, browser, "
                          "Redis or other Pythons; --latest: the stack's tests on the newest releases, in "
                          ".venv-latest/; --record: into the README's table")
    test.add_argument("pytest_args", nargs=argparse.REMAINDER)
    test.set_defaults(func=cmd_test)

    lint = sub.add_parser("lint", help="check the code with ruff, as CI does")
    lint.set_defaults(func=cmd_lint)

    # The command modules' imports cost a learner's `make step-N run` about a third of a second: only when asked.
    for module in _command_modules() if modules else ():
        module.add_commands(sub)
    return parser


def _dev_commands() -> set[str]:
    extra = set()
    for module in _command_modules():
        extra |= set(getattr(module, "DEV_COMMANDS", ()))
    return DEV_COMMANDS | extra


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv[:1] == ["preflight"]:
            # Before the virtualenv, on purpose: a laptop without one gets its ✘ line, not a set-up.
            from .classroom.preflight import main as preflight

            return preflight(argv[1:])
        if not venv.in_venv():
            # Outside .venv only the standard library is safe: set up, then run again inside it.
            if argv[:1] == ["setup"]:
                return bare_setup(argv[1:])
            return reexec_in_venv(argv)
        if argv[:1] == ["test"] and {"--latest", "--record"} & set(argv[1:]):
            from .maintainer.latest import main as check_stack

            return check_stack(argv[1:])
        core = argv[:1] and argv[0] in CORE_COMMANDS
        parser = build_parser(modules=not core)
        if argv[:1] == ["test"]:
            # Everything after `test` belongs to pytest, options such as `-m browser` included.
            args = argparse.Namespace(command="test", func=cmd_test, pytest_args=argv[1:])
        else:
            args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            return 0
        # A `git pull` may have changed a lock since the virtualenv was filled.
        kind = "dev" if args.command in (DEV_COMMANDS if core else _dev_commands()) else "base"
        if args.command != "setup" and not venv.is_ready(kind):
            venv.ensure(kind)
        return args.func(args)
    except WorkbookError as problem:
        print(f"workbook: {problem}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
