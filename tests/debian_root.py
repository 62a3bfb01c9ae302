"""A Debian testing root, made by debootstrap, where a new user meets the workbook on python3.14 and python3.15.

The root is built once and cached outside the clone (WORKBOOK_DEBIAN_ROOT, /var/cache/channels-workbook/… by
default); a change to SUITE or PACKAGES rebuilds it. Build or refresh it by hand with
`python tests/debian_root.py`. It needs root, Debian's debootstrap and the network.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

SUITE = "testing"
PYTHONS = ("3.14", "3.15")  # the supported Pythons pyenv does not offer, which Debian testing has
PYTHON3 = "3.14"  # what `python3` is in Debian testing, so the README's command uses it as it stands
MIRROR = "http://deb.debian.org/debian"
PACKAGES = ("python3", "python3.14", "python3.14-venv", "python3.15", "python3.15-venv", "git", "make",
            "ca-certificates")
CACHE = Path(os.environ.get("WORKBOOK_DEBIAN_ROOT", "/var/cache/channels-workbook/debian-testing"))
HOST_CA = Path("/etc/ssl/certs/ca-certificates.crt")
USER = "learner"
HOME = f"/home/{USER}"
GET_IT = "run the tests as root on a Debian or Ubuntu machine with debootstrap (`apt-get install debootstrap`)"


def missing() -> str | None:
    """Say what this machine lacks to build and enter a root, or None when nothing."""
    if os.name != "posix" or os.geteuid() != 0:
        return "root (debootstrap, chroot and mount need it)"
    for tool in ("debootstrap", "chroot", "mount", "umount"):
        if shutil.which(tool) is None and not Path("/usr/sbin", tool).exists():
            return tool
    return None


def _tool(name: str) -> str:
    return shutil.which(name) or str(Path("/usr/sbin", name))


def mounts_under(root: Path) -> list[str]:
    """List the mount points at or below `root`, deepest first."""
    prefix = str(root.resolve())
    points = []
    with open("/proc/self/mounts", encoding="utf-8") as table:
        for line in table:
            point = line.split()[1].replace("\\040", " ")
            if point == prefix or point.startswith(prefix + "/"):
                points.append(point)
    return sorted(points, key=len, reverse=True)


def unmount_all(root: Path) -> None:
    """Unmount everything below `root`; refuse to go on if something stays mounted."""
    for point in mounts_under(root):
        if subprocess.run([_tool("umount"), point], capture_output=True).returncode != 0:
            subprocess.run([_tool("umount"), "--lazy", point], capture_output=True)
    left = mounts_under(root)
    if left:
        raise RuntimeError(f"still mounted, not touching {root}: {left}")


def _remove(root: Path) -> None:
    # A bind-mounted /dev inside would be emptied along with the root: unmount first, always.
    if root.exists():
        unmount_all(root)
        shutil.rmtree(root)


@contextmanager
def locked(root: Path = CACHE) -> Iterator[None]:
    """Hold the root for this process, so two test runs never build or enter it at once."""
    root.parent.mkdir(parents=True, exist_ok=True)
    with open(root.with_name(root.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def build(root: Path = CACHE, log=None) -> Path:
    """Return a ready root, first making it with debootstrap unless a matching one is cached."""
    stamp = root / ".workbook-root"
    wanted = " ".join([SUITE, MIRROR, *PACKAGES])
    if stamp.exists() and stamp.read_text().strip() == wanted:
        return root
    partial = root.with_name(root.name + ".partial")
    _remove(partial)
    out = {"stdout": log or subprocess.DEVNULL, "stderr": subprocess.STDOUT}
    subprocess.run([_tool("debootstrap"), "--variant=minbase", f"--include={','.join(PACKAGES)}", SUITE,
                    str(partial), MIRROR], check=True, **out)
    subprocess.run([_tool("chroot"), str(partial), "/usr/sbin/useradd", "--create-home", "--shell", "/bin/bash", USER],
                   check=True, env=clean_env(), **out)
    stamp_file = partial / ".workbook-root"
    stamp_file.write_text(wanted + "\n")
    _remove(root)
    partial.rename(root)
    return root


def prepare(root: Path, repo: Path) -> Path:
    """Give the root this machine's CA bundle and DNS, and a git bundle of the repository's HEAD to clone."""
    shutil.copyfile(HOST_CA, root / "etc/ssl/certs/ca-certificates.crt")
    shutil.copyfile("/etc/resolv.conf", root / "etc/resolv.conf")
    bundle = root / "tmp/workbook.bundle"
    subprocess.run(["git", "-C", str(repo), "bundle", "create", str(bundle), "HEAD"], check=True,
                   capture_output=True)
    bundle.chmod(0o644)
    return Path("/tmp/workbook.bundle")


@contextmanager
def mounted(root: Path) -> Iterator[Path]:
    """Mount /proc and bind /dev inside the root; unmount them on the way out, even after a failure."""
    try:
        subprocess.run([_tool("mount"), "-t", "proc", "proc", str(root / "proc")], check=True)
        subprocess.run([_tool("mount"), "--bind", "/dev", str(root / "dev")], check=True)
        yield root
    finally:
        unmount_all(root)


def clean_env(**extra: str) -> dict[str, str]:
    """The root's whole environment: nothing leaks in from the host (PIP_FIND_LINKS, PYTHONPATH, …)."""
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": HOME,
        "USER": USER,
        "LOGNAME": USER,
        "LANG": "C.UTF-8",
        "TERM": "dumb",
        # This machine's network needs its CA bundle; uv reads it from here, pip from the system store.
        "SSL_CERT_FILE": "/etc/ssl/certs/ca-certificates.crt",
        **extra,
    }


def as_user(root: Path, script: str) -> list[str]:
    """The command that runs a bash script as the root's unprivileged user, in its home."""
    uid = gid = None
    for line in (root / "etc/passwd").read_text().splitlines():
        fields = line.split(":")
        if fields[0] == USER:
            uid, gid = fields[2], fields[3]
    if uid is None:
        raise RuntimeError(f"{root} has no user {USER}: remove it and build it again")
    return [_tool("chroot"), f"--userspec={uid}:{gid}", f"--groups={gid}", str(root), "bash", "-c",
            f"cd {HOME} && {script}"]


def run(root: Path, script: str, timeout: float, **env: str) -> subprocess.CompletedProcess:
    """Run a bash script as the root's user; return its completed process (text, output captured)."""
    return subprocess.run(as_user(root, script), env=clean_env(**env), capture_output=True, text=True,
                          timeout=timeout)


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else CACHE
    lacking = missing()
    if lacking:
        raise SystemExit(f"debian_root: {lacking} is missing: {GET_IT}")
    with locked(target):
        print(build(target, log=sys.stderr))
