"""Create and fill the project's virtualenv from the pinned locks, using only the standard library."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from . import pythons
from .errors import WorkbookError

ROOT = Path(__file__).resolve().parent.parent
VENV = Path(os.environ.get("WORKBOOK_VENV", ROOT / ".venv"))
LOCKS = {"base": ROOT / "requirements" / "base.lock", "dev": ROOT / "requirements" / "dev.lock"}
SETUP_LOG = ROOT / ".workbook" / "logs" / "setup.log"
LATEST_STAMP = ".installed-latest"


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


def _digest(lock: Path) -> str:
    return hashlib.sha256(lock.read_bytes()).hexdigest()


def is_ready(kind: str = "base", venv: Path = VENV) -> bool:
    """Tell whether the virtualenv holds exactly what the `kind` lock pins."""
    if (venv / LATEST_STAMP).exists():
        # Filled by `test --latest` with the newest releases instead of a lock: ready as it is.
        return venv_python(venv).exists()
    stamp = _stamp(kind, venv)
    if not venv_python(venv).exists() or not stamp.exists():
        return False
    kinds = ("base", "dev") if kind == "dev" else ("base",)
    recorded = stamp.read_text().split()
    return recorded == [_digest(LOCKS[k]) for k in kinds]


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


def _uv(python: Path, log) -> list[str] | None:
    """Find uv on PATH or put it into the virtualenv; None when neither works."""
    found = shutil.which("uv")
    if found:
        return [found]
    try:
        _run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "uv"], log)
        return [str(python), "-m", "uv"]
    except subprocess.CalledProcessError:
        return None


def create(venv: Path, base_python: str, log) -> None:
    """Create a virtualenv running `base_python`, with uv when it is on PATH."""
    uv_on_path = shutil.which("uv")
    if uv_on_path:
        _run([uv_on_path, "venv", "--quiet", "--python", base_python, str(venv)], log)
    else:
        _run([base_python, "-m", "venv", str(venv)], log)


def install(python: Path, args: list[str], log, env: dict[str, str] | None = None) -> None:
    """Install packages into the environment of `python`: `pip install ARGS`, through uv when it can."""
    installer = _uv(python, log)
    if installer:
        # pip compiles bytecode as it installs, uv only when asked; without it every server start (which runs with
        # PYTHONDONTWRITEBYTECODE) compiles Django from source again, about twice as slow.
        _run([*installer, "pip", "install", "--compile-bytecode", "--python", str(python), *args], log, env)
    else:
        _run([str(python), "-m", "pip", "install", *args], log, env)


def _create(venv: Path, log) -> str:
    """Create the virtualenv; return a note for the set-up line when uv had to provide its Python."""
    here = sys.version_info[:2]
    uv_on_path = shutil.which("uv")
    if pythons.is_supported(here):
        create(venv, sys.executable, log)
        return ""
    if not uv_on_path:
        check_python(here)
    wanted = pythons.describe()
    try:
        # uv picks an installed Python in the range, or downloads one it manages.
        _run([uv_on_path, "venv", "--quiet", "--python", pythons.requires_python(), str(venv)], log)
    except subprocess.CalledProcessError:
        raise WorkbookError(
            f"Python {here[0]}.{here[1]} is outside {wanted} and uv found no Python {wanted} "
            f"(read {SETUP_LOG.relative_to(ROOT)}): run `uv python install {pythons.recommended()}`, "
            "then run the command again"
        ) from None
    return f", which uv provided since Python {here[0]}.{here[1]} is outside {wanted}"


def ensure(kind: str = "base", venv: Path = VENV, quiet: bool = False) -> Path:
    """Make sure the virtualenv exists and matches the lock; return its python."""
    if is_ready(kind, venv):
        return venv_python(venv)
    python = venv_python(venv)
    SETUP_LOG.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    kinds = ("base", "dev") if kind == "dev" else ("base",)
    with open(SETUP_LOG, "a", encoding="utf-8") as log:
        try:
            note = "" if python.exists() else _create(venv, log)
            version = pythons.version_of(python)
            if version is None:
                raise OSError(f"{python} does not run")
            if not pythons.is_supported(version):
                raise WorkbookError(
                    f"{venv.name}/ holds Python {version[0]}.{version[1]}, outside {pythons.describe()}: "
                    "remove it (make clean) and run the command again"
                )
            env = pythons.install_env(version)
            workaround = " and ".join(f"{name}={value}" for name, value in env.items())
            if workaround:
                note += f"; autobahn has no Python {version[0]}.{version[1]} wheel, so it builds with {workaround}"
            if not quiet:
                print(f"workbook: setting up {venv.name}/ from requirements/{kind}.lock with Python "
                      f"{version[0]}.{version[1]}{note} (first run only)…", file=sys.stderr, flush=True)
            for k in kinds:
                install(python, ["-r", str(LOCKS[k])], log, env)
        except (subprocess.CalledProcessError, OSError) as exc:
            raise WorkbookError(
                f"installing the packages failed ({exc}): read {SETUP_LOG.relative_to(ROOT)}, "
                "check your network, then run the same command again"
            ) from None
    for k in kinds:
        stamped = ("base", "dev") if k == "dev" else ("base",)
        _stamp(k, venv).write_text(" ".join(_digest(LOCKS[x]) for x in stamped) + "\n")
    if not quiet:
        print(f"workbook: {venv.name}/ is ready ({time.monotonic() - started:.1f} s)",
              file=sys.stderr, flush=True)
    return python
