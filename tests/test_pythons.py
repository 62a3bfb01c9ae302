"""The workbook runs on every supported Python (pyproject.toml's requires-python), not only the one that runs the
tests; an older one reaches one line saying what to do, or a supported Python from uv."""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
import sys
import textwrap

import debian_root
import kept_venv
import pytest
from conftest import need
from packaging.specifiers import SpecifierSet

from workbook.environment import pythons, wheelhouse
from workbook.environment.venv import installed_uv
from workbook.registry import ROOT, tomllib
from workbook.servers.server import TIMEOUT

# pyenv gives this machine 3.10 to 3.13; a Debian testing root gives 3.14 and 3.15 (test_debian.py).
PYENV_PYTHONS = ["3.10", "3.11", "3.12", "3.13"]
OLD_PYTHONS = ["3.8", "3.9"]


def find_python(version: str) -> str | None:
    """Find a working interpreter for `version`, in pyenv or on PATH (a pyenv shim may not work)."""
    pyenv = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    candidates = sorted(glob.glob(f"{pyenv}/versions/{version}.*/bin/python{version}"))[::-1]
    candidates += [found] if (found := shutil.which(f"python{version}")) else []
    for candidate in candidates:
        if subprocess.run([candidate, "-c", "pass"], capture_output=True).returncode == 0:
            return candidate
    return None


def find_uv() -> str | None:
    """Find the uv the set-up would use (on PATH, or bootstrapped into .workbook/tools/), as the binary itself: a
    pyenv shim only works with pyenv's own PATH."""
    found = installed_uv()
    if found and "/shims/" in found:
        behind = subprocess.run(["pyenv", "which", "uv"], capture_output=True, text=True)
        found = behind.stdout.strip() if behind.returncode == 0 else None
    return found


def setup_env(venv, **extra: str) -> dict[str, str]:
    """The environment of `python -m workbook setup` into `venv`, run from this checkout."""
    env = {**os.environ, "WORKBOOK_VENV": str(venv), "PYTHONPATH": str(ROOT), **extra}
    env.pop("VIRTUAL_ENV", None)
    return env


def setup(python: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([python, "-m", "workbook", "setup"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)


def setup_with(python: str, tmp_path, path: str, **extra: str) -> subprocess.CompletedProcess:
    """Run `python -m workbook setup` into a fresh venv under tmp_path, with only `path` as PATH and no uv of the
    checkout's own (.workbook/tools/, where a set-up without uv on PATH bootstraps one)."""
    extra.setdefault("WORKBOOK_TOOLS", str(tmp_path / "no-tools"))
    return setup(python, setup_env(tmp_path / "venv", PATH=path, UV_PYTHON_DOWNLOADS="never", **extra))


def assert_quiet_no_op(result: subprocess.CompletedProcess) -> None:
    """A set-up against a venv that is ready says nothing and succeeds (a warm run of a kept venv)."""
    assert result.returncode == 0, result.stderr
    assert not [line for line in result.stderr.splitlines() if line.startswith("workbook:")], result.stderr


def set_up_kept(python: str, env: dict[str, str], venv, warm: bool) -> str:
    """Set up `venv` with `python`: a kept one must be a quiet no-op, a fresh one must succeed. Return its stderr."""
    env["WORKBOOK_VENV"] = str(venv)
    done = setup(python, env)
    if warm:
        assert_quiet_no_op(done)
    assert done.returncode == 0, done.stderr
    return done.stderr


def venv_version(venv) -> str:
    python = venv / "bin" / "python"
    return subprocess.run([str(python), "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                          capture_output=True, text=True, check=True).stdout.strip()


def test_the_range_is_the_same_in_pyproject_readme_makefile_lock_and_these_tests():
    """requires-python, the README, the Makefile, uv.lock and the Pythons tested here name one range."""
    wanted = pythons.versions()
    low, high = pythons.describe().split("–")
    readme = (ROOT / "README.md").read_text()
    assert f"You need Python {low}–{high} and git" in readme
    assert set(re.findall(r"\b3\.\d+–3\.\d+\b", readme)) == {f"{low}–{high}"}
    makefile = (ROOT / "Makefile").read_text()
    # Every target that needs a Python before .venv exists says which ones to install.
    assert makefile.count(f"install Python {low}-{high},") == makefile.count("no python3 found") >= 2
    running = f"{sys.version_info[0]}.{sys.version_info[1]}"
    assert sorted({*PYENV_PYTHONS, *debian_root.PYTHONS, running}, key=lambda v: int(v.split(".")[1])) == wanted
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    assert SpecifierSet(lock["requires-python"]) == SpecifierSet(pythons.requires_python()), "run `uv lock`"
    packages = wheelhouse.read_lock()
    for version in wanted:
        minor = int(version.split(".")[1])
        chosen = [package["name"] for package in packages if wheelhouse.applies(package, minor)]
        assert "django" in chosen and "daphne" in chosen, f"uv.lock installs no Django or daphne on {version}"
        twice = {name for name in chosen if chosen.count(name) > 1}
        # A package may split at a patch release (3.11.5): only then may both versions apply to one minor.
        for name in twice:
            bounds = [m for p in packages if p["name"] == name for m in p.get("resolution-markers", [])]
            assert any(f"'{version}." in marker for marker in bounds), f"uv.lock pins {name} twice on {version}"


def test_only_a_python_without_an_autobahn_wheel_gets_the_nvx_workaround():
    """Python 3.15 builds autobahn with AUTOBAHN_USE_NVX=0; 3.10 to 3.14 install its wheel as they are."""
    assert pythons.install_env((3, 15)) == {"AUTOBAHN_USE_NVX": "0"}
    assert [v for v in pythons.versions() if pythons.install_env(tuple(map(int, v.split("."))))] == ["3.15"]


@pytest.mark.pythons
@pytest.mark.parametrize("version", PYENV_PYTHONS, ids=[f"python{v}" for v in PYENV_PYTHONS])
def test_step_4_echoes_on_python(version, request, tmp_path):
    """A venv on this Python installs the lock (fresh, or kept from a run with the same inputs), serves step 4
    under daphne, and echoes."""
    python = find_python(version)
    need(python is not None, f"Python {version}", f"install it (e.g. `pyenv install {version}`)")
    env = setup_env("")
    inputs = kept_venv.key([kept_venv.identify(python)], kept_venv.identify_uv(find_uv()), env)
    with kept_venv.kept(request.config, f"python{version}", inputs, tmp_path) as (venv, warm):
        printed = set_up_kept(python, env, venv, warm)
        assert warm or f"with Python {version} (first run only)" in printed, printed
        script = textwrap.dedent("""
            import asyncio, sys
            from workbook import Server, get_step, client
            with Server(get_step(4), how="daphne") as server:
                reply = asyncio.run(client.echo(server.ws_url(), "hi", quiet=True))
            print(sys.version_info[:2], reply)
        """)
        run = subprocess.run([str(venv / "bin" / "python"), "-c", script], cwd=ROOT, env=env, capture_output=True,
                             text=True, timeout=TIMEOUT * 3)
        assert run.returncode == 0, run.stderr
        major, minor = version.split(".")
        assert run.stdout.strip() == f"({major}, {minor}) {{'message': 'hi'}}"


@pytest.mark.parametrize("version", OLD_PYTHONS, ids=[f"python{v}" for v in OLD_PYTHONS])
def test_an_old_python_without_uv_gets_one_line_naming_what_to_install(version, tmp_path):
    """Without uv, `python3.9 -m workbook setup` prints one line asking for Python 3.10–3.15 or uv, and stops."""
    python = find_python(version)
    need(python is not None, f"Python {version}", f"install it (e.g. `pyenv install {version}`)")
    result = setup_with(python, tmp_path, path=str(tmp_path / "empty"))
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"workbook: Python {version} is outside the {pythons.describe()} the workbook supports: install Python "
        f"{pythons.describe()}, or uv (https://docs.astral.sh/uv/), which fetches one, then run the command again "
        "(e.g. PYTHON=python3.14 make …)"
    ]
    assert not (tmp_path / "venv").exists()


@pytest.mark.pythons
def test_an_old_python_with_uv_sets_up_on_a_supported_python_from_uv(request, tmp_path):
    """With uv on PATH, `python3.9 -m workbook setup` asks uv for a Python in the range and says so in one line."""
    old, other, uv = find_python("3.9"), find_python("3.12"), find_uv()
    need(old is not None and other is not None, "Python 3.9 and 3.12", "install them (`pyenv install 3.9 3.12`)")
    need(uv is not None, "uv", "install it (https://docs.astral.sh/uv/)")
    tools = tmp_path / "bin"
    tools.mkdir()
    (tools / "uv").symlink_to(uv)
    # The only supported Python uv can find is the 3.12 on PATH, and it may not download one.
    env = setup_env("", PATH=f"{tools}{os.pathsep}{os.path.dirname(other)}", UV_PYTHON_DOWNLOADS="never")
    found = subprocess.run([uv, "python", "find", "--system", pythons.requires_python()], cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=60)
    chosen = kept_venv.identify(found.stdout.strip()) if found.returncode == 0 else found.stderr
    inputs = kept_venv.key([kept_venv.identify(old), kept_venv.identify(other), chosen],
                           kept_venv.identify_uv(uv), env)
    with kept_venv.kept(request.config, "python3.9-uv", inputs, tmp_path) as (venv, warm):
        printed = set_up_kept(old, env, venv, warm)
        assert warm or printed.splitlines()[0] == (
            "workbook: setting up venv/ from uv.lock with Python 3.12, which uv provided since "
            f"Python 3.9 is outside {pythons.describe()} (first run only)…"
        ), printed
        assert venv_version(venv) == "3.12"


def test_an_old_python_whose_uv_finds_no_supported_python_says_how_to_get_one(tmp_path):
    """When uv can neither find nor download a Python 3.10–3.15, the one line names `uv python install 3.14`."""
    old, uv = find_python("3.9"), find_uv()
    need(old is not None, "Python 3.9", "install it (`pyenv install 3.9`)")
    need(uv is not None, "uv", "install it (https://docs.astral.sh/uv/)")
    tools = tmp_path / "bin"
    tools.mkdir()
    (tools / "uv").symlink_to(uv)
    result = setup_with(old, tmp_path, path=str(tools), UV_PYTHON_INSTALL_DIR=str(tmp_path / "no-managed-pythons"))
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"workbook: Python 3.9 is outside {pythons.describe()} and uv found no Python {pythons.describe()} "
        "(read .workbook/logs/setup.log): run `uv python install 3.14`, then run the command again"
    ]
