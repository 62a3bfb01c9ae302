"""Create and fill the project's virtualenv with `uv sync --locked`, from uv.lock (or an offline wheelhouse).

Standard library only: this runs on whatever Python the learner typed, before any package is installed. What uv
does not do, and so stays here:
- a stamp (the lock's sha256) per group, so that every `python -m workbook …` can tell in a millisecond that the
  virtualenv is current, where asking `uv sync` costs a third of a second on each command;
- finding uv, or bootstrapping the locked uv with pip into .workbook/tools/ (from the wheelhouse when offline);
- choosing the Python: this one when it is in the range, else one that uv finds, else one line saying what to do;
- the environment a Python needs to build what has no wheel there (pythons.install_env);
- turning uv's failures into one line that points at the set-up log.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from ..errors import WorkbookError
from . import pythons

ROOT = Path(__file__).resolve().parents[2]
VENV = Path(os.environ.get("WORKBOOK_VENV", ROOT / ".venv"))
LOCK = ROOT / "uv.lock"
TOOLS = Path(os.environ.get("WORKBOOK_TOOLS", ROOT / ".workbook" / "tools"))
SETUP_LOG = ROOT / ".workbook" / "logs" / "setup.log"
UNPACKED = ROOT / ".workbook" / "wheelhouse"
LATEST_STAMP = ".installed-latest"
# What each kind of set-up syncs: the project and its dependencies, plus the dev group for the tests and notebooks.
GROUPS = {"base": [], "dev": ["--group", "dev"]}


def venv_python(venv: Path = VENV) -> Path:
    """Return the path of the virtualenv's interpreter."""
    if os.name == "nt":
        return venv / "Scripts" / "python.exe"
    return venv / "bin" / "python"


def in_venv(venv: Path = VENV) -> bool:
    """Tell whether this interpreter is the project's virtualenv."""
    try:
        return Path(sys.prefix).resolve() == venv.resolve()
    except OSError:
        return False


def _stamp(kind: str, venv: Path) -> Path:
    return venv / f".installed-{kind}"


def _digest(lock: Path = LOCK) -> str:
    return hashlib.sha256(lock.read_bytes()).hexdigest()


def is_ready(kind: str = "base", venv: Path = VENV) -> bool:
    """Tell whether the virtualenv holds exactly what uv.lock pins for `kind`."""
    if (venv / LATEST_STAMP).exists():
        # Filled by `test --latest` with the newest releases instead of a lock: ready as it is.
        return venv_python(venv).exists()
    stamp = _stamp(kind, venv)
    return venv_python(venv).exists() and stamp.exists() and stamp.read_text().split() == [_digest()]


def unsupported_message(version: tuple[int, int]) -> str:
    """Say that this Python is outside the supported range, and what to install instead."""
    have, wanted = f"{version[0]}.{version[1]}", pythons.describe()
    return (
        f"Python {have} is outside the {wanted} the workbook supports: install Python {wanted}, or uv "
        f"(https://docs.astral.sh/uv/), which fetches one, then run the command again "
        f"(e.g. PYTHON=python{pythons.recommended()} make …)"
    )


def check_python(version: tuple[int, int] = sys.version_info[:2]) -> None:
    """Refuse a Python outside the supported range, naming what to install instead."""
    if not pythons.is_supported(version):
        raise WorkbookError(unsupported_message(version))


def _run(cmd: list[str], log, env: dict[str, str] | None = None) -> None:
    assignments = [f"{name}={value}" for name, value in (env or {}).items()]
    log.write(f"$ {' '.join([*assignments, *map(str, cmd)])}\n")
    log.flush()
    result = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, env={**os.environ, **(env or {})})
    if result.returncode != 0:
        raise subprocess.CalledProcessError(result.returncode, cmd)


def locked_version(package: str, lock: Path = LOCK) -> str:
    """Return the version uv.lock pins for a package it pins once (e.g. uv itself)."""
    found = re.search(rf'^\[\[package\]\]\nname = "{re.escape(package)}"\nversion = "([^"]+)"',
                      lock.read_text(encoding="utf-8"), re.MULTILINE)
    if not found:
        raise WorkbookError(f"uv.lock pins no {package}: run `uv lock`, then run the command again")
    return found.group(1)


def _tool(name: str, tools: Path = TOOLS) -> Path:
    return tools / ("Scripts" if os.name == "nt" else "bin") / (name + (".exe" if os.name == "nt" else ""))


def installed_uv(tools: Path = TOOLS) -> str | None:
    """Return the uv there is without installing one: the one on PATH, else the one set-up put in .workbook/tools/."""
    uv = _tool("uv", tools)
    return shutil.which("uv") or (str(uv) if uv.exists() else None)


def find_uv(log, wheelhouse: Path | None = None, tools: Path = TOOLS) -> str:
    """Return uv: the one there is (installed_uv), else the locked uv, installed with pip into .workbook/tools/."""
    if found := installed_uv(tools):
        return found
    uv = _tool("uv", tools)
    wanted = f"uv=={locked_version('uv')}"
    source = ["--no-index", "--find-links", str(wheelhouse)] if wheelhouse else []
    try:
        # A venv of its own: pip refuses a system Python's site-packages (PEP 668), and ensurepip needs no network.
        _run([sys.executable, "-m", "venv", str(tools)], log)
        _run([str(_tool("python", tools)), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
              *source, wanted], log)
    except (subprocess.CalledProcessError, OSError):
        shutil.rmtree(tools, ignore_errors=True)
        where = f"the wheelhouse {wheelhouse} has no {wanted} for this machine" if wheelhouse else \
            "check your network"
        raise WorkbookError(f"installing {wanted} with pip into {_shown(tools)}/ failed (read "
                            f"{_shown(SETUP_LOG)}): {where}, or install uv (https://docs.astral.sh/uv/), then run "
                            "the command again") from None
    return str(uv)


def _shown(path: Path) -> str:
    try:
        return path.relative_to(ROOT).as_posix()
    except ValueError:
        return str(path)


def create(venv: Path, base_python: str, log, uv: str | None = None) -> None:
    """Create a virtualenv running `base_python` (a path, or a version request uv resolves)."""
    _run([uv or find_uv(log), "venv", "--quiet", "--python", base_python, str(venv)], log)


def install(python: Path, args: list[str], log, env: dict[str, str] | None = None) -> None:
    """`uv pip install ARGS` into the environment of `python` (for .venv-latest, which follows no lock)."""
    # uv compiles bytecode only when asked; without it every server start (PYTHONDONTWRITEBYTECODE) compiles Django
    # from source again, about twice as slow.
    _run([find_uv(log), "pip", "install", "--compile-bytecode", "--python", str(python), *args], log, env)


def _create(venv: Path, log, uv: str) -> str:
    """Create the virtualenv; return a note for the set-up line when uv had to provide its Python."""
    here = sys.version_info[:2]
    if pythons.is_supported(here):
        create(venv, sys.executable, log, uv)
        return ""
    wanted = pythons.describe()
    try:
        # uv picks an installed Python in the range, or downloads one it manages.
        create(venv, pythons.requires_python(), log, uv)
    except subprocess.CalledProcessError:
        raise WorkbookError(
            f"Python {here[0]}.{here[1]} is outside {wanted} and uv found no Python {wanted} "
            f"(read {_shown(SETUP_LOG)}): run `uv python install {pythons.recommended()}`, "
            "then run the command again"
        ) from None
    return f", which uv provided since Python {here[0]}.{here[1]} is outside {wanted}"


def sync_commands(uv: str, kind: str, python: Path, wheelhouse: Path | None = None) -> list[list[str]]:
    """The uv commands that fill the virtualenv for `kind`: `uv sync --locked`, or offline from a wheelhouse."""
    groups = ["--no-default-groups", *GROUPS[kind]]
    if not wheelhouse:
        return [[uv, "sync", "--locked", "--compile-bytecode", *groups]]
    # `uv sync` with --no-index sees other sources than the lock's and refuses --locked, and with --frozen it
    # fetches the lock's URLs; so the lock is exported (hashes kept) and installed exactly from the wheelhouse.
    exported = UNPACKED.with_name(f"wheelhouse-{kind}.txt")
    return [
        [uv, "export", "--frozen", "--quiet", *groups, "-o", str(exported)],
        [uv, "pip", "sync", "--offline", "--no-index", "--find-links", str(wheelhouse), "--compile-bytecode",
         "--python", str(python), str(exported)],
    ]


def _stale_lock(log_path: Path, since: int) -> bool:
    with open(log_path, encoding="utf-8", errors="replace") as log:
        log.seek(since)
        return "needs to be updated" in log.read()


def ensure(kind: str = "base", venv: Path = VENV, quiet: bool = False, wheelhouse: Path | None = None) -> Path:
    """Make sure the virtualenv exists and matches uv.lock (offline from `wheelhouse` if given); return its python."""
    if is_ready(kind, venv) or (kind == "base" and is_ready("dev", venv)):
        # A checkout may touch uv.lock without changing it: renew the stamps so make's targets stay fresh.
        for ready in filter(lambda k: is_ready(k, venv), GROUPS):
            if _stamp(ready, venv).exists() and _stamp(ready, venv).stat().st_mtime < LOCK.stat().st_mtime:
                _stamp(ready, venv).touch()
        return venv_python(venv)
    if kind == "base" and _stamp("dev", venv).exists():
        # `uv sync` removes what a sync does not name: keep the dev tools a stale dev set-up had.
        kind = "dev"
    python = venv_python(venv)
    if not python.exists() and not installed_uv():
        check_python()
    SETUP_LOG.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    if wheelhouse:
        from .wheelhouse import unpack

        wheelhouse = unpack(Path(wheelhouse).resolve(), UNPACKED)
    with open(SETUP_LOG, "a", encoding="utf-8") as log:
        log_start = log.tell()
        try:
            uv = find_uv(log, wheelhouse)
            note = "" if python.exists() else _create(venv, log, uv)
            version = pythons.version_of(python)
            if version is None:
                raise OSError(f"{python} does not run")
            if not pythons.is_supported(version):
                raise WorkbookError(
                    f"{venv.name}/ holds Python {version[0]}.{version[1]}, outside {pythons.describe()}: "
                    "remove it (make clean) and run the command again"
                )
            env = {**pythons.install_env(version), "UV_PROJECT_ENVIRONMENT": str(venv)}
            workaround = " and ".join(f"{name}={value}" for name, value in pythons.install_env(version).items())
            if workaround:
                note += f"; autobahn has no Python {version[0]}.{version[1]} wheel, so it builds with {workaround}"
            source = f"uv.lock and the wheelhouse {_shown(wheelhouse)}, offline," if wheelhouse else "uv.lock"
            if not quiet:
                print(f"workbook: setting up {venv.name}/ from {source} with Python "
                      f"{version[0]}.{version[1]}{note} (first run only)…", file=sys.stderr, flush=True)
            for command in sync_commands(uv, kind, python, wheelhouse):
                _run(command, log, env)
        except (subprocess.CalledProcessError, OSError) as exc:
            if _stale_lock(SETUP_LOG, log_start):
                raise WorkbookError("uv.lock does not match pyproject.toml: run `uv lock` (README: adding a "
                                    "package), then run the same command again") from None
            where = "check that the wheelhouse was made by `make wheelhouse` from this uv.lock" if wheelhouse \
                else "check your network"
            raise WorkbookError(f"installing the packages failed ({exc}): read {_shown(SETUP_LOG)}, {where}, "
                                "then run the same command again") from None
    for k in ("base", kind):
        _stamp(k, venv).write_text(_digest() + "\n")
    if not quiet:
        print(f"workbook: {venv.name}/ is ready ({time.monotonic() - started:.1f} s)", file=sys.stderr, flush=True)
    return python
