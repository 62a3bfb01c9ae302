"""Create and fill the project's virtualenv from the pinned locks, using only the standard library."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from .errors import WorkbookError

ROOT = Path(__file__).resolve().parent.parent
VENV = Path(os.environ.get("WORKBOOK_VENV", ROOT / ".venv"))
LOCKS = {"base": ROOT / "requirements" / "base.lock", "dev": ROOT / "requirements" / "dev.lock"}
SETUP_LOG = ROOT / ".workbook" / "logs" / "setup.log"
SUPPORTED = ((3, 10), (3, 13))
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


def check_python(version: tuple[int, int] = sys.version_info[:2]) -> None:
    """Refuse a Python the stack does not support, with what to install instead."""
    low, high = SUPPORTED
    if not low <= version <= high:
        have = f"{version[0]}.{version[1]}"
        raise WorkbookError(
            f"Python {have} is not supported here: install Python 3.10 to 3.13 "
            "and run the command again with it (e.g. PYTHON=python3.12 make …)"
        )


def _run(cmd: list[str], log) -> None:
    log.write(f"$ {' '.join(map(str, cmd))}\n")
    log.flush()
    result = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
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


def install(python: Path, args: list[str], log) -> None:
    """Install packages into the environment of `python`: `pip install ARGS`, through uv when it can."""
    installer = _uv(python, log)
    if installer:
        _run([*installer, "pip", "install", "--python", str(python), *args], log)
    else:
        _run([str(python), "-m", "pip", "install", *args], log)


def ensure(kind: str = "base", venv: Path = VENV, quiet: bool = False) -> Path:
    """Make sure the virtualenv exists and matches the lock; return its python."""
    if is_ready(kind, venv):
        return venv_python(venv)
    check_python()
    python = venv_python(venv)
    SETUP_LOG.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    if not quiet:
        print(f"workbook: setting up {venv.name}/ from requirements/{kind}.lock (first run only)…",
              file=sys.stderr, flush=True)
    with open(SETUP_LOG, "a", encoding="utf-8") as log:
        try:
            if not python.exists():
                create(venv, sys.executable, log)
            kinds = ("base", "dev") if kind == "dev" else ("base",)
            for k in kinds:
                install(python, ["-r", str(LOCKS[k])], log)
        except (subprocess.CalledProcessError, OSError) as exc:
            raise WorkbookError(
                f"installing the packages failed ({exc}): read {SETUP_LOG.relative_to(ROOT)}, "
                "check your network, then run the same command again"
            ) from None
    for k in ("base", "dev") if kind == "dev" else ("base",):
        kinds = ("base", "dev") if k == "dev" else ("base",)
        _stamp(k, venv).write_text(" ".join(_digest(LOCKS[x]) for x in kinds) + "\n")
    if not quiet:
        print(f"workbook: {venv.name}/ is ready ({time.monotonic() - started:.1f} s)",
              file=sys.stderr, flush=True)
    return python
