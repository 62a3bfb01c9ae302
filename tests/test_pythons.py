"""The workbook runs on every supported Python (pyproject.toml's requires-python), not only the one that runs the
tests; an older one reaches one line saying what to do, or a supported Python from uv."""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import debian_root
import kept_venv
import pytest
from conftest import STARTED_GROUPS, need
from packaging.specifiers import SpecifierSet

from workbook.environment import pythons, wheelhouse
from workbook.registry import ROOT, tomllib
from workbook.servers.server import TIMEOUT, free_port, port_is_free

# pyenv gives this machine 3.10 to 3.13; a Debian testing root gives 3.14 and 3.15.
PYENV_PYTHONS = ["3.10", "3.11", "3.12", "3.13"]
DEBIAN_PYTHONS = ["3.14", "3.15"]
DEBIAN_PYTHON3 = "3.14"  # what `python3` is in Debian testing, so the README's command uses it as it stands
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
    """Find the uv binary itself: a pyenv shim only works with pyenv's own PATH."""
    found = shutil.which("uv")
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
    """Run `python -m workbook setup` into a fresh venv under tmp_path, with only `path` as PATH."""
    return setup(python, setup_env(tmp_path / "venv", PATH=path, UV_PYTHON_DOWNLOADS="never", **extra))


def assert_quiet_no_op(result: subprocess.CompletedProcess) -> None:
    """A set-up against a venv that is ready says nothing and succeeds (a warm run of a kept venv)."""
    assert result.returncode == 0, result.stderr
    assert not [line for line in result.stderr.splitlines() if line.startswith("workbook:")], result.stderr


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
    assert sorted({*PYENV_PYTHONS, *DEBIAN_PYTHONS, running}, key=lambda v: int(v.split(".")[1])) == wanted
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
        env["WORKBOOK_VENV"] = str(venv)
        done = setup(python, env)
        if warm:
            assert_quiet_no_op(done)
        else:
            assert done.returncode == 0, done.stderr
            assert f"with Python {version} (first run only)" in done.stderr
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


def test_the_key_of_a_kept_venv_changes_with_each_input_of_its_set_up(tmp_path):
    """Changing any one file the set-up reads, the interpreter, uv, a UV_ setting or the checkout changes the key."""
    assert all((ROOT / name).exists() for name in kept_venv.INPUTS), "an input was moved: update kept_venv.INPUTS"
    root = tmp_path / "checkout"
    for name in kept_venv.INPUTS:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, root / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(ROOT / name, root / name)
    here = kept_venv.identify(sys.executable)
    assert here.startswith(os.path.realpath(sys.executable)) and sys.version in here
    python, uv, environ = [here], "/bin/uv 0 uv 0.13.9", {"UV_INDEX_URL": "https://a.invalid/", "HOME": "/a"}

    def key(**changed):
        given = {"interpreters": python, "uv": uv, "environ": environ, "root": root, **changed}
        return kept_venv.key(given["interpreters"], given["uv"], given["environ"], given["root"])

    shutil.copytree(root, tmp_path / "moved")
    base = key()
    assert key(environ={**environ, "HOME": "/b"}) == base  # only what the set-up reads counts
    keys = {
        "interpreter": key(interpreters=[here.replace(sys.version, sys.version + "+")]),
        "another interpreter": key(interpreters=[*python, here]),
        "uv": key(uv="/bin/uv 0 uv 0.13.10"),
        "a UV_ setting": key(environ={**environ, "UV_INDEX_URL": "https://b.invalid/"}),
        "a new UV_ setting": key(environ={**environ, "UV_OFFLINE": "1"}),
        "the checkout": key(root=tmp_path / "moved"),
    }
    files = [path for path in sorted(root.rglob("*")) if path.is_file()]
    assert {path.relative_to(root).as_posix() for path in files} >= {"uv.lock", "workbook/environment/venv.py"}
    for path in [*files, root / "workbook" / "environment" / "new.py"]:
        before = path.read_bytes() if path.exists() else None
        path.write_bytes((before or b"") + b"\n")
        keys[path.relative_to(root).as_posix()] = key()
        if before is None:
            path.unlink()
        else:
            path.write_bytes(before)
    assert key() == base
    assert base not in keys.values() and len(set(keys.values())) == len(keys), keys


# Prints the file of every workbook module that `python -m workbook setup` imports on a Python outside the venv.
SETUP_IMPORTS = """
import runpy, sys
sys.argv = ["workbook", "setup", "--help"]
try:
    runpy.run_module("workbook", run_name="__main__", alter_sys=True)
except SystemExit:
    pass
print("IMPORTED", *sorted(module.__file__ for name, module in sys.modules.items() if name.split(".")[0] == "workbook"))
"""


def test_every_module_the_set_up_imports_is_an_input_of_the_kept_venvs_key(tmp_path):
    """`python -m workbook setup` reads no workbook module the key of a kept venv leaves out."""
    env = {**os.environ, "WORKBOOK_VENV": str(tmp_path / "no-venv"), "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", SETUP_IMPORTS], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    files = done.stdout.split("IMPORTED", 1)[1].split()
    imported = {Path(name).relative_to(ROOT).as_posix() for name in files}
    assert "workbook/environment/venv.py" in imported
    covered = {name for name in imported if any(name == i or name.startswith(i + "/") for i in kept_venv.INPUTS)}
    assert imported == covered, f"add to kept_venv.INPUTS: {sorted(imported - covered)}"


class FakeCache:
    def __init__(self, where):
        self.where = where

    def mkdir(self, name):
        (self.where / name).mkdir(parents=True, exist_ok=True)
        return self.where / name


def test_a_kept_venv_is_kept_only_after_its_test_passed_and_only_for_its_key(tmp_path):
    """A failed or killed run leaves no venv to build on; a passed one is warm for its key, cold for any other."""
    config = type("Config", (), {"cache": FakeCache(tmp_path / "cache")})()

    def use(key, fail=False, kill=False):
        with kept_venv.kept(config, "python3.10", key, tmp_path) as (venv, warm):
            found = sorted(p.name for p in venv.iterdir()) if venv.exists() else []
            venv.mkdir(exist_ok=True)
            (venv / key).touch()
            if fail:
                raise RuntimeError("the set-up failed")
        return warm, found

    with pytest.raises(RuntimeError):
        use("a", fail=True)
    assert not (tmp_path / "cache" / kept_venv.CACHE / "python3.10").exists()
    assert use("a") == (False, [])
    assert use("a") == (True, ["a"])
    assert use("b") == (False, [])  # another key: the stale venv is gone
    (tmp_path / "cache" / kept_venv.CACHE / "python3.10" / "key").unlink()  # as a run killed before it passed
    assert use("b") == (False, [])
    no_cache = type("Config", (), {})()
    with kept_venv.kept(no_cache, "python3.10", "b", tmp_path / "cold") as (venv, warm):
        assert (venv, warm) == (tmp_path / "cold" / "venv", False)


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
        env["WORKBOOK_VENV"] = str(venv)
        result = setup(old, env)
        if warm:
            assert_quiet_no_op(result)
        else:
            assert result.returncode == 0, result.stderr
            assert result.stderr.splitlines()[0] == (
                "workbook: setting up venv/ from uv.lock with Python 3.12, which uv provided since "
                f"Python 3.9 is outside {pythons.describe()} (first run only)…"
            )
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


def test_without_root_the_debian_root_tests_name_what_they_need(monkeypatch):
    """As an ordinary user, the Debian root reports that it needs root, and GET_IT says how to get the rest."""
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert debian_root.missing() == "root (debootstrap, chroot and mount need it)"
    assert "apt-get install debootstrap" in debian_root.GET_IT


@pytest.mark.debian
def test_the_roots_mounts_are_gone_after_a_failure_inside_it(tmp_path):
    """mounted() puts /proc and /dev in the root and takes both away again when the code inside raises."""
    need(os.name == "posix" and os.geteuid() == 0, "root", debian_root.GET_IT)
    for place in ("proc", "dev"):
        (tmp_path / place).mkdir()
    with pytest.raises(RuntimeError, match="a test failed inside"):
        with debian_root.mounted(tmp_path):
            assert len(debian_root.mounts_under(tmp_path)) == 2
            assert (tmp_path / "dev" / "null").is_char_device() and (tmp_path / "proc" / "self").exists()
            raise RuntimeError("a test failed inside")
    assert debian_root.mounts_under(tmp_path) == []
    assert list((tmp_path / "dev").iterdir()) == []


@pytest.fixture(scope="module")
def debian():
    """A cached Debian testing root with /proc and /dev mounted, and this clone's HEAD ready to clone."""
    lacking = debian_root.missing()
    need(lacking is None, str(lacking), debian_root.GET_IT)
    with debian_root.locked():
        started = time.monotonic()
        root = debian_root.build(log=sys.stderr)
        print(f"\ndebian root ready in {time.monotonic() - started:.0f} s: {root}", file=sys.stderr)
        bundle = debian_root.prepare(root, ROOT)
        with debian_root.mounted(root):
            yield root, bundle


ECHO = """
import asyncio, json, sys, websockets
async def main():
    async with websockets.connect("ws://127.0.0.1:{port}/ws/chat/") as ws:
        await ws.send(json.dumps({{"message": "hi from " + sys.argv[1]}}))
        print(await ws.recv())
asyncio.run(main())
"""


@pytest.mark.debian
@pytest.mark.timeout(1200)
@pytest.mark.parametrize("version", DEBIAN_PYTHONS, ids=[f"python{v}" for v in DEBIAN_PYTHONS])
def test_a_new_user_on_debian_testing_follows_the_readme_on_python(version, debian, tmp_path):
    """In a Debian testing root, a fresh clone sets up on this Python, echoes on step 4 and passes the stage tests."""
    root, bundle = debian
    clone = f"workbook-{version}"
    # The user's package caches (~/.cache) stay: the first run in a new root (each CI run) sets up from the network,
    # a later one as a learner's second clone would. `bench/setup_and_start.py --cold-cache` times a cold one.
    fresh = debian_root.run(root, f"(test -d .cache && echo warm || echo cold) && rm -rf {clone} && "
                                  f"git -c advice.detachedHead=false clone -q {bundle} {clone}", timeout=120)
    assert fresh.returncode == 0, fresh.stderr
    cache = fresh.stdout.split()[0]
    # The README's command: `make step-4 run` sets up .venv/ with python3 (or PYTHON) first, then serves.
    command = "make step-4 run" + ("" if version == DEBIAN_PYTHON3 else f" PYTHON=python{version}")
    port = free_port()
    log_path = tmp_path / "make.log"
    with open(log_path, "w") as log:
        server = subprocess.Popen(
            debian_root.as_user(root, f"cd {clone} && {command}"),
            env=debian_root.clean_env(PORT=str(port)), stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
    STARTED_GROUPS.append(server.pid)
    try:
        deadline = time.monotonic() + 600
        while "is up on" not in log_path.read_text() and time.monotonic() < deadline:
            assert server.poll() is None, log_path.read_text()
            time.sleep(0.2)
        output = log_path.read_text()
        assert "is up on" in output, output
        setting_up = next(line for line in output.splitlines() if line.startswith("workbook: setting up"))
        assert f"with Python {version}" in setting_up
        assert ("AUTOBAHN_USE_NVX=0" in setting_up) == (version == "3.15"), setting_up
        ready = re.search(r"workbook: \.venv/ is ready \(([\d.]+) s\)", output)
        print(f"\npython{version}: set-up {ready.group(1)} s, {cache} cache ({setting_up})", file=sys.stderr)
        echo = debian_root.run(root, f"{clone}/.venv/bin/python - python{version} <<'EOF'\n"
                                     f"{ECHO.format(port=port)}\nEOF", timeout=TIMEOUT * 2)
        assert echo.returncode == 0, echo.stderr
        assert json.loads(echo.stdout) == {"message": f"hi from python{version}"}
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGINT)
        try:
            server.wait(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
            raise AssertionError("make step-4 run did not stop on Ctrl-C") from None
    assert port_is_free(port), f"step 4 still holds port {port} after Ctrl-C"
    # The stage tests under the daphne CLI and in-process: `make step-4 run` above already covered runserver.
    started = time.monotonic()
    stages = debian_root.run(root, f"cd {clone} && python{version} -m workbook test tests/test_stages.py -q "
                                   "-m 'not redis and not browser' "
                                   "-p no:cacheprovider -k 'not runserver'", timeout=900)
    summary = stages.stdout.strip().splitlines()[-1:] or [stages.stderr]
    dev_ready = re.search(r"is ready \(([\d.]+) s\)", stages.stderr)
    print(f"python{version}: dev set-up {dev_ready.group(1) if dev_ready else '?'} s, then {summary[0]}; "
          f"{time.monotonic() - started:.0f} s in all", file=sys.stderr)
    assert stages.returncode == 0, stages.stdout[-3000:] + stages.stderr[-2000:]
    assert " passed" in summary[0] and "failed" not in summary[0] and "skipped" not in summary[0], summary
