"""Keep each Python's matrix venv between runs, as tox and nox keep theirs: same inputs, same venv.

Why no coverage is lost: `python -m workbook setup` makes a venv out of its inputs and nothing else: the
interpreter (its real path and full version), uv.lock, pyproject.toml, the set-up code (workbook/environment/, and
the __init__.py, __main__.py, cli.py and errors.py it imports), uv itself, the UV_* settings, and the checkout the
venv installs in editable mode. Installing the same lock with the same interpreter and the same code gives the same
venv, so building it again on the next run proves nothing the first build did not. The key hashes every one of
those inputs: a change to any one makes the next run cold, and a cold run is the test as it always was, a fresh
venv and its "first run only" line. A warm run still runs the set-up against the kept venv and holds it to a quiet
no-op, then does with the venv whatever the test does (serve step 4 on that Python and echo).

A venv is kept only when its whole test passed: the key is taken away while a test uses the venv and written back
last, and a venv without it (a set-up that failed, a run that was killed) is removed before the next run builds.
The venvs live in pytest's cache (.pytest_cache/, which `make clean` removes), so a clean clone, as in CI, always
starts cold; with `-p no:cacheprovider` nothing is kept.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

from workbook.registry import ROOT

# What `python -m workbook setup` reads, besides the interpreter and uv: files, or folders taken whole.
INPUTS = ("uv.lock", "pyproject.toml", "workbook/environment", "workbook/__init__.py", "workbook/__main__.py",
          "workbook/cli.py", "workbook/errors.py")
CACHE = "workbook-python-venvs"  # under pytest's cache dir: .pytest_cache/d/workbook-python-venvs/


def identify(python: str) -> str:
    """Name an interpreter by its real path and full version (sys.version carries the build too)."""
    done = subprocess.run([python, "-c", "import sys; print(sys.version)"], capture_output=True, text=True,
                          timeout=60)
    return f"{os.path.realpath(python)} {done.returncode} {done.stdout.strip()} {done.stderr.strip()}"


def identify_uv(uv: str | None) -> str:
    """Name the uv the set-up uses by its real path and version ("none" when the set-up must install its own)."""
    if uv is None:
        return "none"
    done = subprocess.run([uv, "--version"], capture_output=True, text=True, timeout=60)
    return f"{os.path.realpath(uv)} {done.returncode} {done.stdout.strip()}"


def key(interpreters: list[str], uv: str, environ: Mapping[str, str], root: Path = ROOT) -> str:
    """Hash everything a matrix venv's set-up depends on: a change to any one input changes the key."""
    digest = hashlib.sha256()

    def add(label: str, data: bytes) -> None:
        digest.update(f"{label}\0{len(data)}\0".encode() + data)

    add("root", str(root).encode())
    for identity in interpreters:
        add("python", identity.encode())
    add("uv", uv.encode())
    for name in INPUTS:
        path = root / name
        files = sorted(p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts) \
            if path.is_dir() else [path]
        for file in files:
            add(file.relative_to(root).as_posix(), file.read_bytes() if file.exists() else b"(missing)")
    for name in sorted(filter(lambda n: n.startswith("UV_"), environ)):
        add(name, environ[name].encode())
    return digest.hexdigest()


@contextlib.contextmanager
def kept(config, name: str, key: str, cold_dir: Path) -> Iterator[tuple[Path, bool]]:
    """Yield (venv, warm): the venv kept for `name` if its key matches, else a path to build a fresh one at.

    The venv is kept (its key written) only when the block ends without an error; on any error it is removed.
    Without pytest's cache, the venv is built under `cold_dir` and never kept.
    """
    cache = getattr(config, "cache", None)
    if cache is None:
        print(f"\n{name}: cold venv (no pytest cache: nothing is kept)", file=sys.stderr)
        yield cold_dir / "venv", False
        return
    home = cache.mkdir(CACHE) / name
    home.mkdir(exist_ok=True)
    with _locked(home.with_name(name + ".lock")):
        stamp, venv = home / "key", home / "venv"
        warm = venv.is_dir() and stamp.is_file() and stamp.read_text() == key
        if warm:
            stamp.unlink()  # until this run passes too: a run killed halfway leaves nothing to build on
        else:
            # Another key's venv, or one whose test failed or was killed: never built upon.
            shutil.rmtree(home)
            home.mkdir()
        print(f"\n{name}: {'warm' if warm else 'cold'} venv {venv} (key {key[:12]})", file=sys.stderr)
        try:
            yield venv, warm
        except BaseException:
            shutil.rmtree(home, ignore_errors=True)
            raise
        partial = stamp.with_name("key.partial")
        partial.write_text(key)
        os.replace(partial, stamp)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on `path`, so two sessions in one checkout never share a venv being built."""
    try:
        import fcntl
    except ImportError:  # Windows: the matrix runs on pyenv's Pythons, so on POSIX
        yield
        return
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
