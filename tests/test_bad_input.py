"""A mistyped PORT or HOST gets one line saying what is wrong and what to do, through make and python -m workbook."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import need, run_python

from workbook import client, get_step
from workbook.errors import WorkbookError
from workbook.registry import ROOT
from workbook.servers.listen import Given, read_host, read_port, try_bind
from workbook.servers.server import TIMEOUT, free_port, port_is_free

# (what the learner sets, the one line the runner answers with, after "workbook: ")
MISTAKES = [
    pytest.param({"PORT": "abc"},
                 "PORT=abc is not a number: a port is a whole number from 1024 to 65535, e.g. PORT=8001",
                 id="port-abc"),
    pytest.param({"PORT": "8000.5"},
                 "PORT=8000.5 is not a whole number: a port is a whole number from 1024 to 65535, e.g. PORT=8001",
                 id="port-decimal"),
    pytest.param({"PORT": "70000"},
                 "PORT=70000 is out of range: ports go from 1 to 65535; use one from 1024 up, e.g. PORT=8001",
                 id="port-70000"),
    pytest.param({"PORT": "-1"},
                 "PORT=-1 is out of range: ports go from 1 to 65535; use one from 1024 up, e.g. PORT=8001",
                 id="port-negative"),
    pytest.param({"PORT": "0"},
                 "PORT=0 would let the system pick any port, and nobody would know which: "
                 "choose one from 1024 to 65535, e.g. PORT=8001",
                 id="port-0"),
    pytest.param({"PORT": ""}, "PORT is empty: leave it out for 8000, or give one, e.g. PORT=8001", id="port-empty"),
    pytest.param({"HOST": "nonexistent.invalid"},
                 "HOST=nonexistent.invalid is a name this machine cannot resolve: "
                 "use HOST=127.0.0.1 (this machine only) or HOST=0.0.0.0 (other machines can join)",
                 id="host-unresolvable"),
    # A documentation address (RFC 5737): no machine has it, so nothing can listen there.
    pytest.param({"HOST": "192.0.2.1"},
                 "HOST=192.0.2.1 is not an address of this machine: "
                 "use HOST=127.0.0.1 (this machine only) or HOST=0.0.0.0 (other machines can join)",
                 id="host-not-here"),
    pytest.param({"HOST": "http://127.0.0.1"}, "HOST=http://127.0.0.1 is a URL: give only its address, HOST=127.0.0.1",
                 id="host-url"),
    pytest.param({"HOST": "http://localhost:8000/"},
                 "HOST=http://localhost:8000/ is a URL: give only its address, HOST=localhost PORT=8000",
                 id="host-url-with-port"),
    pytest.param({"HOST": "127.0.0.1:8000"},
                 "HOST=127.0.0.1:8000 includes a port: give them apart, HOST=127.0.0.1 PORT=8000",
                 id="host-with-port"),
    pytest.param({"HOST": "[::1]:8000"}, "HOST=[::1]:8000 includes a port: give them apart, HOST=::1 PORT=8000",
                 id="host-ipv6-with-port"),
    pytest.param({"HOST": ""},
                 "HOST is empty: leave it out to serve this machine only (127.0.0.1), "
                 "or give HOST=0.0.0.0 to let other machines join",
                 id="host-empty"),
    pytest.param({"HOST": "*"},
                 "HOST=* is not a host name or address: "
                 "use HOST=127.0.0.1 (this machine only) or HOST=0.0.0.0 (other machines can join)",
                 id="host-star"),
]


def workbook_lines(stderr: str) -> list[str]:
    return [line.removeprefix("workbook: ") for line in stderr.splitlines() if line.startswith("workbook:")]


@pytest.mark.parametrize(("env", "line"), MISTAKES)
def test_python_m_workbook_run_answers_a_mistyped_variable_in_one_line(env, line):
    """`PORT=… python -m workbook run 4` (or HOST=…) prints exactly one line naming the mistake, and exits 1."""
    env = {"PORT": str(free_port()), **env}
    result = run_python("-m", "workbook", "run", "4", env=env)
    assert (result.returncode, result.stderr.strip().splitlines()) == (1, [f"workbook: {line}"]), result.stderr


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed (use python -m workbook)")
@pytest.mark.parametrize(("env", "line"), MISTAKES)
def test_make_step_4_run_answers_a_mistyped_variable_in_one_line(env, line):
    """`PORT=… make step-4 run` (or HOST=…) prints the same one line, and no traceback."""
    env = {**os.environ, "PORT": str(free_port()), **env}
    result = subprocess.run(["make", "--no-print-directory", "step-4", "run"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=TIMEOUT * 4)
    assert result.returncode != 0
    assert workbook_lines(result.stderr) == [line]
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(("args", "line"), [
    pytest.param(["--port", "abc"],
                 "--port abc is not a number: a port is a whole number from 1024 to 65535, e.g. --port 8001",
                 id="port-abc"),
    pytest.param(["--host", "127.0.0.1:8000"],
                 "--host 127.0.0.1:8000 includes a port: give them apart, --host 127.0.0.1 --port 8000",
                 id="host-with-port"),
    pytest.param(["--host", "nonexistent.invalid"],
                 "--host nonexistent.invalid is a name this machine cannot resolve: "
                 "use --host 127.0.0.1 (this machine only) or --host 0.0.0.0 (other machines can join)",
                 id="host-unresolvable"),
])
def test_a_mistyped_option_is_answered_in_the_options_own_words(args, line):
    """`python -m workbook run 4 --port abc` names --port, not PORT, and suggests an option to type."""
    result = run_python("-m", "workbook", "run", "4", *args)
    assert (result.returncode, result.stderr.strip().splitlines()) == (1, [f"workbook: {line}"]), result.stderr


def test_a_bad_port_variable_does_not_break_commands_that_do_not_serve():
    """`PORT=abc python -m workbook list` still lists the steps (the port is read only by what serves)."""
    result = run_python("-m", "workbook", "list", env={"PORT": "abc"})
    assert result.returncode == 0 and "Routing" in result.stdout, result.stderr


def test_the_pitfall_lab_answers_a_mistyped_port_in_one_line():
    """`PORT=abc python -m workbook pitfall run no-as-asgi` gets the same one line as run."""
    result = run_python("-m", "workbook", "pitfall", "run", "no-as-asgi", env={"PORT": "abc"})
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1:] == [
        "workbook: PORT=abc is not a number: a port is a whole number from 1024 to 65535, e.g. PORT=8001"
    ]


def test_the_doctor_answers_a_mistyped_port_in_one_line():
    """`PORT=abc python -m workbook doctor` (which probes the server `run` would start) names the mistake."""
    result = run_python("-m", "workbook", "doctor", env={"PORT": "abc"})
    assert (result.returncode, result.stderr.strip().splitlines()) == (1, [
        "workbook: PORT=abc is not a number: a port is a whole number from 1024 to 65535, e.g. PORT=8001"
    ])


def test_blanks_around_a_port_or_a_host_and_brackets_around_ipv6_are_forgiven():
    """PORT=" 8001 " means 8001, and HOST=[::1] means ::1: both are unambiguous."""
    assert read_port(Given("PORT", " 8001 ")) == 8001
    assert read_host(Given("HOST", " [::1] ")) == "::1"
    assert read_host(Given("HOST", "localhost")) == "localhost"


def test_an_ipv6_loopback_host_serves_the_page_and_the_echo(serve):
    """HOST=::1 is an address like any other: step 4 answers on http://[::1]:PORT/."""
    need(socket.has_ipv6 and try_bind("::1", 0) is None, "IPv6 on loopback (::1)",
         "enable IPv6 (sysctl net.ipv6.conf.lo.disable_ipv6=0)")
    server = serve(get_step(4), host=read_host(Given("HOST", "::1")))
    assert server.http_url == f"http://[::1]:{server.port}/"
    assert asyncio.run(client.echo(server.ws_url(), "over IPv6", quiet=True)) == {"message": "over IPv6"}


def test_a_privileged_port_as_a_normal_user_says_it_needs_administrator_rights():
    """PORT=80 for a user who may not listen there is named as such, not as a busy port."""
    start = Path("/proc/sys/net/ipv4/ip_unprivileged_port_start")
    if not start.exists() or int(start.read_text()) <= 80:
        pytest.skip("this system lets every user listen on port 80 (or is not Linux): there is no refusal to show")
    prefix = []
    if os.geteuid() == 0:
        # As root, become an ordinary user for the network while keeping access to this checkout and its venv.
        need(shutil.which("unshare") is not None, "unshare", "install util-linux (apt-get install util-linux)")
        prefix = ["unshare", "--user", "--map-root-user"]
    result = subprocess.run([*prefix, sys.executable, "-m", "workbook", "run", "4"], cwd=ROOT,
                            env={**os.environ, "PORT": "80", "HOST": "127.0.0.1"}, capture_output=True, text=True,
                            timeout=TIMEOUT * 4)
    assert result.stderr.strip().splitlines() == [
        "workbook: PORT=80 needs administrator rights (ports below 1024 are reserved): "
        "use one from 1024 up, e.g. PORT=8000"
    ], result.stderr


def test_a_port_out_of_range_given_to_the_runner_in_python_is_one_line_too():
    """port_is_free(70000), which Server.start calls, raises a WorkbookError, not an OverflowError."""
    with pytest.raises(WorkbookError, match=r"^PORT=70000 is out of range: ports go from 1 to 65535"):
        port_is_free(70000)
