"""A new user on python3.14 and python3.15, which pyenv does not offer, follows the README in a Debian testing root:
a fresh clone, `make step-4 run`, an echo, then the stage tests."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

import debian_root
import pytest
from conftest import STARTED_GROUPS, need

from workbook.registry import ROOT
from workbook.servers.server import TIMEOUT, free_port, port_is_free


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
@pytest.mark.parametrize("version", debian_root.PYTHONS, ids=[f"python{v}" for v in debian_root.PYTHONS])
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
    command = "make step-4 run" + ("" if version == debian_root.PYTHON3 else f" PYTHON=python{version}")
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
