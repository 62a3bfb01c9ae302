"""Check the workbook against the newest releases of its stack, in a virtualenv of their own (.venv-latest/).

`python -m workbook test --latest` resolves Django, channels, daphne, channels-redis and websockets afresh from
the registry, on the newest supported Python it can find, and runs the stack's tests there. `--record` writes the
run's versions and result into the README's compatibility table (`test --record` does the same for the locks).
"""

from __future__ import annotations

import argparse
import datetime
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

from ..environment import pythons, venv
from ..errors import WorkbookError

ROOT = venv.ROOT
LATEST_VENV = ROOT / ".venv-latest"
PYTHON_ENV = "WORKBOOK_LATEST_PYTHON"
# The packages whose newest releases are checked; everything else a test needs is resolved along with them.
STACK = ("Django", "channels", "daphne", "channels-redis", "websockets")
# The tests that exercise the stack: every stage, groups on Redis, the final project, the notebooks, the baseline.
TESTS = (
    "tests/test_stages.py",
    "tests/test_groups_redis.py",
    "tests/test_final.py",
    "tests/test_notebooks.py",
    "tests/test_snapshots.py",
)
README = ROOT / "README.md"
START = "<!-- compat:start"
END = "<!-- compat:end -->"
HEADER = ("Stack", "Python", *STACK, "Checked", "Result")
ROWS = {"pinned": "pinned locks", "latest": "newest releases"}
JUNIT = ROOT / ".workbook" / "logs" / "stack-tests.xml"


# --- what is installed ---------------------------------------------------------
def versions(python: str | Path | None = None) -> dict[str, str]:
    """Return the versions of Python and the stack that `python` (this interpreter when None) runs."""
    if python is None:
        from importlib.metadata import version

        return {"Python": sys.version.split()[0], **{name: version(name) for name in STACK}}
    code = "import json, workbook.maintainer.latest as l; print(json.dumps(l.versions()))"
    done = subprocess.run([str(python), "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise WorkbookError(f"{python} cannot report the stack's versions ({last}): "
                            f"remove {LATEST_VENV.name}/ and run the same command again")
    return json.loads(done.stdout)


def versions_line(found: dict[str, str]) -> str:
    """Render versions as one line: `Python 3.13.0 · Django 6.1.3 · channels 4.3.2 · …`."""
    return " · ".join(f"{name} {found[name]}" for name in ("Python", *STACK))


# --- which Python ----------------------------------------------------------------
def candidates(minor: tuple[int, int]) -> list[str]:
    """List the places an interpreter of this version may be: uv's finder, PATH, pyenv's versions."""
    version = f"{minor[0]}.{minor[1]}"
    found: list[str] = []
    uv = venv.installed_uv()
    if uv:
        done = subprocess.run([uv, "python", "find", "--system", "--no-project", version],
                              capture_output=True, text=True, timeout=60)
        if done.returncode == 0 and done.stdout.strip():
            found.append(done.stdout.strip())
    on_path = shutil.which(f"python{version}")
    if on_path:
        found.append(on_path)
    pyenv = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    found += sorted(glob.glob(f"{pyenv}/versions/{version}.*/bin/python{version}"), reverse=True)
    return found


def find_python(override: str | None = None) -> str:
    """Return the interpreter to test on: the override, else the newest supported Python that runs."""
    override = override or os.environ.get(PYTHON_ENV)
    if override:
        python = shutil.which(override) or override
        if pythons.version_of(python) is None:
            raise WorkbookError(f"{override} (from --python or {PYTHON_ENV}) does not run: "
                                "name one that runs (a full path works, e.g. --python /usr/bin/python3.13)")
        return python
    (low_major, low), (high_major, high) = pythons.supported()
    for minor in range(high, low - 1, -1):
        for python in candidates((high_major, minor)):
            if pythons.version_of(python) == (high_major, minor):
                return python
    raise WorkbookError(f"no Python {low_major}.{low} to {high_major}.{high} found: install one "
                        f"(e.g. `uv python install {high_major}.{high}`), or set {PYTHON_ENV}")


# --- the virtualenv ---------------------------------------------------------------
def requirements() -> list[str]:
    """Return pyproject's dependencies and dev group, with every bound on the stack's packages removed."""
    from ..registry import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    wanted = [*project["project"]["dependencies"], *project["dependency-groups"]["dev"]]
    stack = {_normal(name) for name in STACK}
    relaxed = []
    for requirement in wanted:
        name, marker = re.match(r"\s*([A-Za-z0-9._-]+)[^;]*(;.*)?$", requirement).groups()
        relaxed.append(f"{name}{marker or ''}" if _normal(name) in stack else requirement)
    return relaxed


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def prepare(base_python: str, quiet: bool = False) -> Path:
    """Create or refresh .venv-latest on `base_python` with the newest releases; return its interpreter."""
    python = venv.venv_python(LATEST_VENV)
    base_version = pythons.version_of(base_python)
    if python.exists() and pythons.version_of(python) != base_version:
        shutil.rmtree(LATEST_VENV)
    venv.SETUP_LOG.parent.mkdir(parents=True, exist_ok=True)
    if not quiet:
        print(f"workbook: resolving the newest releases into {LATEST_VENV.name}/ on {base_python}…",
              file=sys.stderr, flush=True)
    with open(venv.SETUP_LOG, "a", encoding="utf-8") as log:
        try:
            if not python.exists():
                venv.create(LATEST_VENV, base_python, log)
            venv.install(python, ["--upgrade", *requirements()], log, pythons.install_env(base_version))
            # The notebooks' kernels import workbook as .venv's do: installed (editable), without its pins.
            venv.install(python, ["--no-deps", "--editable", str(ROOT)], log)
        except (subprocess.CalledProcessError, OSError) as exc:
            raise WorkbookError(
                f"installing the newest releases failed ({exc}): read {venv.SETUP_LOG.relative_to(ROOT)}, "
                "check your network, then run the same command again"
            ) from None
    (LATEST_VENV / venv.LATEST_STAMP).write_text(f"{base_python}\n", encoding="utf-8")
    return python


# --- the run and its result ---------------------------------------------------------
def outcome(junit: Path) -> dict[str, int]:
    """Count a pytest JUnit report's tests by outcome: passed, failed, skipped, xfailed."""
    counts = {"passed": 0, "failed": 0, "skipped": 0, "xfailed": 0}
    for case in ET.parse(junit).getroot().iter("testcase"):
        if case.find("failure") is not None or case.find("error") is not None:
            counts["failed"] += 1
        elif (skipped := case.find("skipped")) is not None:
            counts["xfailed" if skipped.get("type") == "pytest.xfail" else "skipped"] += 1
        else:
            counts["passed"] += 1
    return counts


def result_text(counts: dict[str, int]) -> str:
    """Say what a run gave, pytest's way: `131 passed, 1 xfailed` (zero counts left out)."""
    order = ("failed", "passed", "skipped", "xfailed")
    return ", ".join(f"{counts[kind]} {kind}" for kind in order if counts[kind]) or "no tests ran"


def parse_block(text: str) -> list[dict[str, str]]:
    """Read the README's compatibility table into rows keyed by the header's names."""
    if START not in text or END not in text:
        raise WorkbookError(f"the README has no compatibility block ({START} … {END}): put the markers back")
    block = text.split(START, 1)[1].split("\n", 1)[1].split(END, 1)[0]
    cells = [[cell.strip() for cell in line.strip().strip("|").split("|")] for line in block.strip().splitlines()]
    if not cells or tuple(cells[0]) != HEADER:
        raise WorkbookError(f"the README's compatibility table must start with the header {' | '.join(HEADER)}")
    return [dict(zip(HEADER, row, strict=True)) for row in cells[2:]]


def render_block(rows: list[dict[str, str]]) -> str:
    """Write the compatibility table, pinned locks first."""
    order = list(ROWS.values())
    rows = sorted(rows, key=lambda row: order.index(row["Stack"]) if row["Stack"] in order else len(order))
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(row[name] for name in HEADER) + " |" for row in rows]
    return "\n".join(lines)


def record(kind: str, found: dict[str, str], result: str, readme: Path = README, today: str | None = None) -> None:
    """Put this run's row into the README's compatibility table, keeping the other row."""
    text = readme.read_text(encoding="utf-8")
    rows = [row for row in parse_block(text) if row["Stack"] != ROWS[kind]]
    today = today or datetime.datetime.now(datetime.timezone.utc).date().isoformat()
    rows.append({"Stack": ROWS[kind], **found, "Checked": today, "Result": result})
    head, rest = text.split(START, 1)
    marker_line, rest = rest.split("\n", 1)
    tail = rest.split(END, 1)[1]
    readme.write_text(f"{head}{START}{marker_line}\n{render_block(rows)}\n{END}{tail}", encoding="utf-8")


def main(argv: list[str]) -> int:
    """`test --latest [--python P] [--record] [pytest args]`, or `test --record` for the locks."""
    parser = argparse.ArgumentParser(prog="python -m workbook test", add_help=False)
    parser.add_argument("--latest", action="store_true")
    parser.add_argument("--record", action="store_true")
    parser.add_argument("--python")
    options, pytest_args = parser.parse_known_args(argv)
    if options.record and pytest_args:
        raise WorkbookError("--record writes the whole check into the README: run it without pytest arguments")
    kind = "latest" if options.latest else "pinned"
    env = dict(os.environ)
    if options.latest:
        python = prepare(find_python(options.python))
        # The tests' servers and `python -m workbook` run this interpreter, not .venv's.
        env["WORKBOOK_VENV"] = str(LATEST_VENV)
    else:
        python = venv.ensure("dev")
    found = versions(python)
    print(f"workbook: {ROWS[kind]}: {versions_line(found)}", flush=True)
    JUNIT.parent.mkdir(parents=True, exist_ok=True)
    JUNIT.unlink(missing_ok=True)
    code = subprocess.call([str(python), "-m", "pytest", *(pytest_args or TESTS), f"--junitxml={JUNIT}"],
                           cwd=ROOT, env=env)
    if options.record:
        if not JUNIT.exists():
            raise WorkbookError(f"pytest wrote no report (exit {code}): nothing recorded")
        result = result_text(outcome(JUNIT))
        record(kind, found, result)
        print(f"workbook: recorded in README.md: {ROWS[kind]}, {versions_line(found)}: {result}", flush=True)
    return code
