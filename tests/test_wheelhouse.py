"""`make wheelhouse` holds every file uv.lock needs, and `make setup WHEELHOUSE=…` sets up from it with no network."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
import tarfile

import pytest
from conftest import need
from packaging.tags import sys_tags

from workbook.environment import pythons, venv, wheelhouse
from workbook.errors import WorkbookError
from workbook.registry import ROOT

MINORS = [int(v.split(".")[1]) for v in pythons.versions()]
HERE = f"{sys.version_info[0]}.{sys.version_info[1]}"


def name_of(file: dict) -> str:
    return file["url"].rsplit("/", 1)[-1]


def test_every_python_and_platform_gets_a_wheel_or_the_packages_source():
    """For each locked package, supported Python and platform, the wheelhouse holds a wheel or the sdist."""
    packages = wheelhouse.read_lock()
    files = {name_of(file) for file in wheelhouse.needed(packages, MINORS, list(wheelhouse.PLATFORMS))}
    for package in packages:
        has_sdist = "sdist" in package and name_of(package["sdist"]) in files
        for minor in filter(lambda m: wheelhouse.applies(package, m), MINORS):
            for where in wheelhouse.PLATFORMS:
                wheel = wheelhouse.best_wheel(package, minor, where)
                assert (wheel and name_of(wheel) in files) or has_sdist, \
                    f"{package['name']} {package['version']}: nothing for 3.{minor} on {where}"


def test_autobahn_comes_as_its_source_on_python_315():
    """autobahn has no wheel for 3.15 anywhere, so the wheelhouse carries its sdist (built with AUTOBAHN_USE_NVX=0)."""
    packages = [p for p in wheelhouse.read_lock() if p["name"] == "autobahn" and wheelhouse.applies(p, 15)]
    assert len(packages) == 1
    assert all(wheelhouse.best_wheel(packages[0], 15, where) is None for where in wheelhouse.PLATFORMS)
    names = {name_of(file) for file in wheelhouse.needed(packages, [15], ["linux-x86_64"])}
    assert names == {name_of(packages[0]["sdist"])}


@pytest.mark.skipif(sys.platform != "linux" or platform.machine() != "x86_64", reason="checks linux-x86_64 wheels")
def test_the_wheel_chosen_for_this_machine_installs_here():
    """Each wheel picked for this Python on linux-x86_64 carries a tag this interpreter accepts."""
    accepted = {str(tag) for tag in sys_tags()}
    minor = sys.version_info[1]
    chosen = 0
    for package in filter(lambda p: wheelhouse.applies(p, minor), wheelhouse.read_lock()):
        wheel = wheelhouse.best_wheel(package, minor, "linux-x86_64")
        if wheel:
            tags = {"-".join(tag) for tag in wheelhouse.tags(name_of(wheel))}
            assert tags & accepted, f"{name_of(wheel)} does not install on this Python"
            chosen += 1
    assert chosen > 50


def test_a_folder_holding_other_files_is_refused_and_left_alone(tmp_path):
    """`wheelhouse DIR` on a folder with someone's files says so in one line and deletes nothing."""
    (tmp_path / "holiday.jpg").write_bytes(b"not a wheel")
    with pytest.raises(WorkbookError, match="holds other files and no WHEELHOUSE.txt: name an empty or new folder"):
        wheelhouse.build(tmp_path, ["linux-x86_64"], [HERE], quiet=True)
    assert [p.name for p in tmp_path.iterdir()] == ["holiday.jpg"]


def test_a_wheelhouse_that_is_neither_a_folder_nor_a_tar_gets_one_line(tmp_path):
    """WHEELHOUSE naming a missing path or a non-archive is refused with what to name instead."""
    (tmp_path / "notes.txt").write_text("hello")
    for path in (tmp_path / "missing", tmp_path / "notes.txt"):
        with pytest.raises(WorkbookError, match="is neither a folder nor a .tar archive: name what `make wheelhouse`"):
            wheelhouse.unpack(path, tmp_path / "into")


@pytest.fixture(scope="module")
def archive():
    """A wheelhouse for this Python on linux-x86_64, packed into a .tar (kept between runs: a rerun fetches nothing)."""
    need(sys.platform == "linux" and platform.machine() == "x86_64", "Linux on x86_64", "run it on such a machine")
    folder = ROOT / ".workbook" / "cache" / f"wheelhouse-test-{HERE}"
    made = subprocess.run([sys.executable, "-m", "workbook", "wheelhouse", str(folder), "--platform", "linux-x86_64",
                           "--python", HERE, "--archive"], cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert made.returncode == 0, made.stderr
    assert f"make setup WHEELHOUSE={folder}.tar" in made.stderr
    return folder.with_name(folder.name + ".tar")


def fresh_checkout(into):
    """Copy the files git knows (tracked, or new and not ignored), as a clone of this working tree would have."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():
            (into / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, into / name)


def test_a_fresh_checkout_sets_up_from_the_wheelhouse_with_no_network_and_no_uv(archive, tmp_path):
    """In a network namespace with no interfaces and no uv on PATH, `make list WHEELHOUSE=….tar` sets up and runs."""
    unshare, make = shutil.which("unshare"), shutil.which("make")
    need(unshare is not None and make is not None, "unshare and make", "apt-get install util-linux make")
    checkout = tmp_path / "workbook"
    fresh_checkout(checkout)
    empty = tmp_path / "empty-path"
    empty.mkdir()
    python = getattr(sys, "_base_executable", None) or sys.executable
    # A clean machine: no PATH (so no uv), no caches, no pip configuration pointing at local indexes.
    env = {"PATH": str(empty), "HOME": str(tmp_path / "home"), "UV_CACHE_DIR": str(tmp_path / "uv-cache"),
           "PIP_CONFIG_FILE": os.devnull, "LANG": "C.UTF-8"}
    interfaces = "import socket; print(*sorted(name for _, name in socket.if_nameindex()))"
    script = f'"$1" -c "{interfaces}" && exec "$2" list PYTHON="$1" WHEELHOUSE="$3"'
    namespace = [unshare, "-n"] if os.geteuid() == 0 else [unshare, "-rn"]
    done = subprocess.run([*namespace, "/bin/sh", "-c", script, "sh", python, make, str(archive)], cwd=checkout,
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr + (checkout / ".workbook/logs/setup.log").read_text()
    assert done.stdout.splitlines()[0] == "lo", "the namespace has a network: the test proves nothing"
    assert "1     Bare ASGI" in done.stdout
    assert (f"workbook: setting up .venv/ from uv.lock and the wheelhouse .workbook/wheelhouse/{archive.stem}, "
            f"offline, with Python {HERE}") in done.stderr
    tools_uv = checkout / ".workbook" / "tools" / "bin" / "uv"
    version = subprocess.run([str(tools_uv), "--version"], capture_output=True, text=True, check=True).stdout
    assert version.split()[:2] == ["uv", venv.locked_version("uv")]
    imported = subprocess.run([str(checkout / ".venv/bin/python"), "-c", "import daphne, django, workbook; "
                               "print(workbook.__file__)"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert imported.stdout.strip() == str(checkout / "workbook" / "__init__.py"), imported.stderr


def test_the_archive_unpacks_to_the_folder_it_was_made_from(archive, tmp_path):
    """unpack() gives back the wheelhouse folder, every file intact, from the .tar that `--archive` wrote."""
    folder = wheelhouse.unpack(archive, tmp_path)
    assert folder == tmp_path / archive.stem
    with tarfile.open(archive) as tar:
        packed = sorted(m.name.split("/", 1)[1] for m in tar.getmembers() if m.isfile())
    assert sorted(p.name for p in folder.iterdir()) == packed
    assert wheelhouse.MARKER in packed and any(name.startswith("uv-") for name in packed)
