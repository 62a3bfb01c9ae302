"""Diagnose a Channels project directory, or a running server, and name each known pitfall with its fix.

`python -m workbook doctor PATH` loads the project in a subprocess the way daphne and runserver do (one project
per interpreter), falling back to text checks when it does not load; `doctor ws://HOST:PORT/PATH` probes a server.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from ..environment.pythonpath import importable
from ..errors import WorkbookError
from ..registry import ROOT
from .pages import page_findings, page_scripts, socket_facts
from .routing import routing_findings, websocket_code
from .rules import Finding, async_findings, database_findings, load_findings, settings_findings, text_findings


def settings_module(project: Path) -> str:
    """Read the settings module that manage.py sets, as Django does when it starts."""
    manage = project / "manage.py"
    if not manage.exists():
        raise WorkbookError(f"{project} has no manage.py: point the doctor at the directory that holds manage.py")
    match = re.search(r"DJANGO_SETTINGS_MODULE['\"]\s*,\s*['\"]([\w.]+)['\"]", manage.read_text(encoding="utf-8"))
    if not match:
        raise WorkbookError(f"{manage} does not set DJANGO_SETTINGS_MODULE: is it a Django project?")
    return match.group(1)


# --- loading the project the way a server would -------------------------------------------------------
def interpreter(project: Path, python: str | None = None) -> str:
    """Pick the Python that runs the project: the one given, a virtualenv inside the project, or this one."""
    if python:
        return python
    for name in (".venv", "venv", "env"):
        for candidate in (project / name / "bin" / "python", project / name / "Scripts" / "python.exe"):
            if candidate.is_file():
                return str(candidate)
    return sys.executable


def load_facts(project: Path, module: str, paths: list[str], python: str | None = None) -> dict:
    """Run inspector.py with the project's Python, inside the project, once per way of loading; return JSON."""
    target = f"{module.rpartition('.')[0]}.asgi:application" if "." in module else "asgi:application"
    env = importable({k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}, project)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    script = str(Path(__file__).with_name("inspector.py"))
    cmd = [interpreter(project, python), script, "", module, target, *sorted(paths)]
    found = {}
    for mode in ("daphne", "runserver"):
        cmd[2] = mode
        try:
            done = subprocess.run(cmd, cwd=project, env=env, capture_output=True, text=True, timeout=120)
        except subprocess.TimeoutExpired:
            found[mode] = {"import_error": {"type": "timeout", "message": "loading it took over 120 s", "where": ""}}
            continue
        out = done.stdout.rpartition("@@doctor@@")[2]
        try:
            found[mode] = json.loads(out)
        except ValueError:
            last = (done.stderr.strip().splitlines() or ["no output"])[-1]
            found[mode] = {"import_error": {"type": "crash", "message": last, "where": ""}}
        if not found[mode]["import_error"]:
            break
    return found


def examine(project: Path | str, port: int | None = None, python: str | None = None) -> list[Finding]:
    """Inspect a Django project directory; return what is wrong or worth knowing."""
    from ..servers.ports import port_is_free, who_holds

    project = Path(project).resolve()
    if not project.is_dir():
        raise WorkbookError(f"{project} is not a directory: give the doctor a Django project or a ws:// URL")
    module = settings_module(project)
    pages = socket_facts(page_scripts(project))
    found = load_facts(project, module, sorted(pages["paths"]), python)
    findings = load_findings(found)
    facts = found["daphne"] if not found["daphne"]["import_error"] else found.get("runserver", {})
    if facts.get("import_error") is None and "settings" in facts:
        consumers = [r["consumer"] for r in facts["routes"] if r["consumer"]]
        findings += settings_findings(facts, pages) + routing_findings(facts, pages, websocket_code(project))
        findings += database_findings(facts)
        findings += page_findings(pages, consumers)
    else:
        findings += text_findings(project, module) + page_findings(pages, [])
    findings += async_findings(project)
    if port and not port_is_free(port):
        holder = who_holds(port)
        findings.append(Finding(
            "port-in-use", True, f"port {port} is in use{f' by {holder}' if holder else ''}: a new server there fails",
        ))
    return findings


# --- the command --------------------------------------------------------------------------------------
def resolve_target(target: str) -> str:
    """Turn a step number, `final` or a path into a project path; leave URLs alone."""
    if re.match(r"wss?://", target):
        return target
    if Path(target).is_dir():
        return target
    if re.search(r"[/\\]|^\.", target):
        raise WorkbookError(f"{target} is not a directory: give the doctor a project, a step number or a ws:// URL")
    if target == "final" and (ROOT / "final").is_dir():
        return str(ROOT / "final")
    from ..registry import get_step

    return str(get_step(target).path)


def diagnose(target: str, port: int | None = None, frames: bool = False, python: str | None = None) -> list[Finding]:
    """Examine a project directory or probe a ws:// URL (resolve step numbers first)."""
    if re.match(r"wss?://", target):
        import asyncio

        from .probe import probe

        return asyncio.run(probe(target, frames=frames))
    return examine(target, port=port, python=python)


def _shown(target: str) -> str:
    try:
        return str(Path(target).resolve().relative_to(Path.cwd()))
    except ValueError:
        return target


def report(target: str, findings: list[Finding]) -> int:
    """Print the findings for one target; return 1 when one is a problem, else 0."""
    problems = sum(f.problem for f in findings)
    print(f"doctor: {target}")
    for finding in findings:
        print("  " + finding.render().replace("\n", "\n  "))
    warnings = len(findings) - problems
    verdict = f"{problems} problem(s)" if problems else "healthy"
    print(f"  => {verdict}" + (f", {warnings} warning(s)" if warnings else ""))
    return 1 if problems else 0


def cmd_doctor(args) -> int:
    code = 0
    from ..servers.listen import connect_host, given, read_host, read_port

    # The server `run` starts from the same HOST and PORT; a mistyped one is named here, not as a traceback.
    host = connect_host(read_host(given("HOST", None)))
    default = f"ws://{f'[{host}]' if ':' in host else host}:{read_port(given('PORT', None))}/ws/chat/"
    for target in args.targets or [default]:
        target = resolve_target(target)
        findings = diagnose(target, port=args.port, frames=args.frames, python=args.python)
        code = max(code, report(_shown(target), findings))
    return code


def add_commands(sub) -> None:
    doctor = sub.add_parser(
        "doctor", help="diagnose a project directory (or step number) or a running server's ws:// URL",
        description="Name each known Channels pitfall found, with its fix. Exit 0 when healthy, 1 on a problem.",
    )
    doctor.add_argument("targets", nargs="*", metavar="PATH|STEP|URL",
                        help="a Django project directory, a step number, `final`, or ws://HOST:PORT/PATH "
                             "(default: ws://$HOST:$PORT/ws/chat/, the server `run` starts)")
    doctor.add_argument("--port", type=int, help="also check that this port is free to serve on")
    doctor.add_argument("--python", help="the Python that runs the project (default: PATH/.venv's, else this one)")
    doctor.add_argument("--frames", action="store_true",
                        help="with a URL: also send a non-JSON frame and a JSON frame without 'message'")
    doctor.set_defaults(func=cmd_doctor)
    from .pitfalls import add_commands as add_pitfall_commands

    add_pitfall_commands(sub)
