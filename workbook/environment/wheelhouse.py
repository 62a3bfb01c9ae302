"""An offline wheelhouse: every file uv.lock needs on the machines a class brings, in one folder for a USB stick.

`python -m workbook wheelhouse [DIR] [--archive]` picks, for each locked package, each supported Python (cp310 to
cp315) and each platform below, the wheel an installer would take, and the sdist where some target has no wheel
(autobahn on 3.15). Every file is checked against the lock's sha256. `make setup WHEELHOUSE=DIR` installs from it
with no network (see venv.py).
"""

from __future__ import annotations

import hashlib
import re
import shutil
import sys
import tarfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ..errors import WorkbookError
from . import pythons

ROOT = Path(__file__).resolve().parents[2]
LOCK = ROOT / "uv.lock"
DEFAULT_DIR = ROOT / "build" / "wheelhouse"
# Written into the folder: it says what the folder is on a USB stick, and marks it as ours to prune.
MARKER = "WHEELHOUSE.txt"
ABOUT = """The Django Channels workbook's wheelhouse: every file its uv.lock needs for Python {versions}
on {platforms}. Set up a laptop with no network from it, in the workbook's folder:

    make setup WHEELHOUSE=/path/to/this/folder
    python -m workbook setup --dev --wheelhouse /path/to/this/folder    (without make)

Made by `make wheelhouse`, which also removes from this folder what the lock no longer needs.
"""
# The machines a class brings; each names the platform tags of the wheels that run there.
PLATFORMS = {
    "linux-x86_64": r"(manylinux\d*|manylinux_\d+_\d+)_x86_64",
    "linux-aarch64": r"(manylinux\d*|manylinux_\d+_\d+)_aarch64",
    "macos-x86_64": r"macosx_\d+_\d+_(x86_64|universal2|intel)",
    "macos-arm64": r"macosx_\d+_\d+_(arm64|universal2)",
    "windows-amd64": r"win_amd64",
}


def read_lock(lock: Path = LOCK) -> list[dict]:
    """Return the lock's packages that come from a registry (the project itself is not one)."""
    from ..registry import tomllib

    packages = tomllib.loads(lock.read_text(encoding="utf-8"))["package"]
    return [package for package in packages if "registry" in package.get("source", {})]


def tags(filename: str) -> list[tuple[str, str, str]]:
    """Expand a wheel's file name into its (python, abi, platform) tags."""
    parts = filename[: -len(".whl")].split("-")
    python, abi, platform = parts[-3:]
    return [(p, a, q) for p in python.split(".") for a in abi.split(".") for q in platform.split(".")]


def _rank(tag: tuple[str, str, str], minor: int, platform: str) -> tuple | None:
    """How well a tag fits CPython 3.minor on `platform` (lower is better), None when it does not run there."""
    python, abi, plat = tag
    if plat != "any" and not re.fullmatch(PLATFORMS[platform], plat):
        return None
    if python == f"cp3{minor}" and abi == f"cp3{minor}":
        kind = 0
    elif python.startswith("cp3") and abi == "abi3" and int(python[3:]) <= minor:
        kind = 1
    elif python in ("py3", f"py3{minor}", f"cp3{minor}") and abi == "none":
        kind = 2
    else:
        return None
    # Among wheels that fit, prefer a platform-specific one, then the oldest glibc or macOS it asks for.
    floor = tuple(int(n) for n in re.findall(r"\d+", plat)[:2])
    return kind, plat == "any", floor


def best_wheel(package: dict, minor: int, platform: str) -> dict | None:
    """Return the wheel of a locked package an installer picks for CPython 3.minor on `platform`, or None."""
    ranked = []
    for wheel in package.get("wheels", []):
        name = wheel["url"].rsplit("/", 1)[-1]
        fits = [rank for tag in tags(name) if (rank := _rank(tag, minor, platform)) is not None]
        if fits:
            ranked.append((min(fits), name, wheel))
    return min(ranked, key=lambda item: item[:2])[2] if ranked else None


def applies(package: dict, minor: int) -> bool:
    """Tell whether the lock installs this version of a package on some CPython 3.minor (it may split by Python)."""
    from packaging.markers import Marker

    markers = package.get("resolution-markers")
    if not markers:
        return True
    cpython = {"platform_python_implementation": "CPython", "implementation_name": "cpython",
               "python_version": f"3.{minor}"}
    return any(Marker(marker).evaluate({**cpython, "python_full_version": f"3.{minor}.{patch}"})
               for marker in markers for patch in (0, 99))


def needed(packages: list[dict], minors: list[int], platforms: list[str]) -> list[dict]:
    """List every file to fetch: the best wheel per target, and the sdist of a package some target lacks a wheel for."""
    files: dict[str, dict] = {}
    for package in packages:
        missing = False
        for minor in (m for m in minors if applies(package, m)):
            for platform in platforms:
                wheel = best_wheel(package, minor, platform)
                if wheel:
                    files[wheel["url"]] = wheel
                else:
                    missing = True
        if missing and "sdist" in package:
            files[package["sdist"]["url"]] = package["sdist"]
    return sorted(files.values(), key=lambda f: f["url"].rsplit("/", 1)[-1])


def _fetch(file: dict, folder: Path) -> int:
    """Download one file into the folder unless an intact copy is there; return the bytes it holds."""
    target = folder / file["url"].rsplit("/", 1)[-1]
    algorithm, digest = file["hash"].split(":", 1)
    if target.exists() and hashlib.new(algorithm, target.read_bytes()).hexdigest() == digest:
        return target.stat().st_size
    partial = target.with_name(target.name + ".part")
    with urllib.request.urlopen(file["url"], timeout=120) as response, open(partial, "wb") as out:
        shutil.copyfileobj(response, out)
    if hashlib.new(algorithm, partial.read_bytes()).hexdigest() != digest:
        partial.unlink()
        raise WorkbookError(f"{target.name} does not match uv.lock's {algorithm}: run the same command again")
    partial.replace(target)
    return target.stat().st_size


def build(folder: Path, platforms: list[str] | None = None, versions: list[str] | None = None, archive: bool = False,
          quiet: bool = False) -> Path:
    """Fill `folder` with every file the lock needs (and nothing else); return the folder or its archive."""
    platforms = platforms or list(PLATFORMS)
    versions = versions or pythons.versions()
    minors = [int(v.split(".")[1]) for v in versions]
    files = needed(read_lock(), minors, platforms)
    marker = folder / MARKER
    if folder.is_dir() and any(folder.iterdir()) and not marker.exists():
        raise WorkbookError(f"{folder} holds other files and no {MARKER}: name an empty or new folder")
    folder.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    if not quiet:
        print(f"workbook: fetching {len(files)} files for Python {', '.join(versions)} on {', '.join(platforms)} "
              f"into {folder}…", file=sys.stderr, flush=True)
    try:
        with ThreadPoolExecutor(max_workers=8) as pool:
            total = sum(pool.map(lambda file: _fetch(file, folder), files))
    except OSError as exc:
        raise WorkbookError(f"fetching the wheelhouse failed ({exc}): check your network, then run the same "
                            "command again (files already fetched are kept)") from None
    marker.write_text(ABOUT.format(versions=", ".join(versions), platforms=", ".join(platforms)), encoding="utf-8")
    wanted = {MARKER, *(file["url"].rsplit("/", 1)[-1] for file in files)}
    for stale in folder.iterdir():
        if stale.name not in wanted:
            stale.unlink()
    result = folder
    if archive:
        result = folder.with_name(folder.name + ".tar")
        with tarfile.open(result, "w") as tar:
            tar.add(folder, arcname=folder.name)
    if not quiet:
        print(f"workbook: {len(files)} files, {total / 2**20:.0f} MiB, in {result} "
              f"({time.monotonic() - started:.0f} s); on a machine without network: "
              f"make setup WHEELHOUSE={result}", file=sys.stderr, flush=True)
    return result


def unpack(path: Path, into: Path) -> Path:
    """Return the wheelhouse folder at `path`, first unpacking it into `into` when it is a .tar archive."""
    if path.is_dir():
        return path
    if not path.is_file() or not tarfile.is_tarfile(path):
        raise WorkbookError(f"WHEELHOUSE={path} is neither a folder nor a .tar archive: name what "
                            "`make wheelhouse` wrote (build/wheelhouse, or build/wheelhouse.tar with ARCHIVE=1)")
    with tarfile.open(path) as tar:
        tops = {member.name.split("/", 1)[0] for member in tar.getmembers()}
        if len(tops) != 1:
            raise WorkbookError(f"{path} holds more than one folder: make it again with `make wheelhouse ARCHIVE=1`")
        top = into / tops.pop()
        shutil.rmtree(top, ignore_errors=True)
        # The data filter refuses links and absolute paths; Pythons before 3.12 have no filters.
        tar.extractall(into, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
    return top


def cmd_wheelhouse(args) -> int:
    unknown = sorted(set(args.python or ()) - set(pythons.versions()))
    if unknown:
        raise WorkbookError(f"--python {unknown[0]} is not one the workbook supports: name one of "
                            f"{', '.join(pythons.versions())}")
    build(Path(args.folder).resolve(), args.platform or None, args.python or None, archive=args.archive)
    return 0


def add_commands(sub) -> None:
    parser = sub.add_parser("wheelhouse", help="write every wheel the lock needs into one folder, for an offline "
                            "set-up (make setup WHEELHOUSE=DIR)")
    parser.add_argument("folder", nargs="?", default=str(DEFAULT_DIR), help="where (default: build/wheelhouse)")
    parser.add_argument("--platform", action="append", choices=list(PLATFORMS),
                        help="only this platform (repeat for more; default: all of them)")
    parser.add_argument("--python", action="append", metavar="3.N",
                        help="only this Python (repeat for more; default: every supported one)")
    parser.add_argument("--archive", action="store_true", help="also pack the folder into FOLDER.tar")
    parser.set_defaults(func=cmd_wheelhouse)
