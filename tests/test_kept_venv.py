"""The key of a kept matrix venv (tests/kept_venv.py) follows every input of the set-up, and a venv is kept only
after its test passed: what lets the Python matrix in test_pythons.py build each venv once per set of inputs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import kept_venv
import pytest

from workbook.registry import ROOT


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
            assert not (venv.parent / "key").exists()  # a run killed now leaves a venv without its key
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
