"""`make step-N run` starts lean: the runner's own commands load none of the modules that add other commands."""

from __future__ import annotations

import argparse

from conftest import run_python

from workbook import cli


def wired_here() -> set[str]:
    parser = cli.build_parser(modules=False)
    commands = next(action for action in parser._actions if isinstance(action, argparse._SubParsersAction))
    return set(commands.choices)


def test_the_core_commands_are_exactly_those_the_command_line_wires_itself():
    """CORE_COMMANDS names every command cli.py adds, and none that a command module adds."""
    assert cli.CORE_COMMANDS == wired_here()


def test_run_loads_none_of_the_command_modules():
    """`python -m workbook run` gets to its step without importing the command modules (notebooks, doctor…)."""
    result = run_python("-X", "importtime", "-m", "workbook", "run", "999")
    assert "unknown step" in result.stderr or "no step" in result.stderr, result.stderr[-500:]
    loaded = {line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines() if line.startswith("import time")}
    assert "workbook.cli" in loaded
    assert not loaded & {f"workbook.{name}" for name in cli.COMMAND_MODULES}


def test_a_command_from_a_module_still_works_from_the_command_line():
    """`python -m workbook pitfall list` (a command module's command) is still found."""
    result = run_python("-m", "workbook", "pitfall", "list")
    assert result.returncode == 0, result.stderr
    assert "no-as-asgi" in result.stdout


def test_the_migrate_stamp_reads_the_django_version_that_is_installed():
    """The stamp's Django version, read from django/__init__.py without importing Django, is Django's VERSION."""
    import ast

    import django

    from workbook.servers.migrate import django_version

    assert ast.literal_eval(django_version()) == django.VERSION
