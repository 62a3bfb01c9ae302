"""The runner gives learners one clear line for every common mistake, and never leaves a server behind."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time

import pytest
from conftest import group_alive, run_python, steps

from workbook import Server, WorkbookError, get_step
from workbook.diffs import as_html, unified
from workbook.environment.venv import check_python, installed_uv
from workbook.registry import ROOT, load_steps, previous
from workbook.servers.server import TIMEOUT, port_is_free


@pytest.fixture
def listener():
    """A socket listening on a free loopback port, as another program holding it would."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    yield sock.getsockname()[1]
    sock.close()


def wait_until(predicate, timeout: float = TIMEOUT) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def test_steps_are_found_by_number_padded_number_or_directory_name():
    """get_step accepts 4, "4", "04" and "04-routing"."""
    assert {get_step(x).id for x in (4, "4", "04", "04-routing")} == {"04-routing"}


def test_an_unknown_step_says_which_steps_exist():
    """Asking for step 42 names the valid range in one line."""
    with pytest.raises(WorkbookError, match=r"there is no step '42': choose 1 to \d+"):
        get_step(42)


def test_an_unsupported_python_is_refused_with_what_to_install():
    """Python 3.9 and 3.16 get one line asking for 3.10 to 3.15 or uv; 3.10 and 3.15 pass."""
    for version in ((3, 9), (3, 16)):
        with pytest.raises(WorkbookError, match=rf"Python 3.{version[1]} is outside the 3.10–3.15 the workbook "
                                                r"supports: install Python 3.10–3.15, or uv \(https://"):
            check_python(version)
    check_python((3, 10))
    check_python((3, 15))


def test_a_busy_port_is_reported_in_one_line_with_the_way_out(listener):
    """Starting on a port something listens on says so and suggests the next port."""
    with pytest.raises(WorkbookError) as problem:
        Server(get_step(4), port=listener).start()
    message = str(problem.value)
    assert message.startswith(f"port {listener} is busy")
    assert f"PORT={listener + 1} make" in message
    assert "\n" not in message


# Only read: the session's shared server of step 3 (the step parameter puts the test on the worker of step 3's tests).
@pytest.mark.parametrize("step", steps(3))
def test_a_busy_port_names_the_step_still_running_there(step, shared_server):
    """When the runner's own server holds the port, the message names that step."""
    running = shared_server(step, "runserver")
    with pytest.raises(WorkbookError, match=rf"port {running.port} is busy \(03-scope is still running there\)"):
        Server(get_step(4), port=running.port).start()


def test_the_cli_reports_a_busy_port_without_a_traceback(listener):
    """`python -m workbook run 4` on a busy port prints one line and exits 1."""
    result = run_python("-m", "workbook", "run", "4", "--port", str(listener), env={"MAKELEVEL": ""})
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"workbook: port {listener} is busy (is another step or server still running?): "
        f"stop it, or run python -m workbook run 4 --port {listener + 1}"
    ]


def test_a_broken_step_is_summed_up_in_one_line(tmp_path):
    """A project whose asgi.py imports a missing module fails to start with that error named."""
    broken = tmp_path / "broken"
    shutil.copytree(get_step(4).path, broken)
    (broken / "chat/routing.py").unlink()
    with pytest.raises(WorkbookError) as problem:
        Server(broken, how="daphne").start()
    message = str(problem.value)
    assert message.startswith("broken did not start: ModuleNotFoundError: No module named 'chat.routing'")
    assert "\n" not in message


def test_a_system_check_error_is_named(tmp_path):
    """daphne listed after staticfiles stops runserver, and the line names daphne.E001."""
    broken = tmp_path / "late-daphne"
    shutil.copytree(get_step(1).path, broken)
    settings = broken / "mychannels/settings.py"
    text = settings.read_text()
    text = text.replace("    'daphne',  # first: it replaces runserver with an ASGI server\n", "")
    text = text.replace("    'channels',\n", "    'channels',\n    'daphne',\n")
    settings.write_text(text)
    with pytest.raises(WorkbookError, match=r"late-daphne did not start: .*\(daphne\.E001\)"):
        Server(broken).start()


def test_a_project_directory_without_manage_py_is_refused(tmp_path):
    """Pointing the runner at a folder that is not a Django project says so."""
    with pytest.raises(WorkbookError, match="has no manage.py"):
        Server(tmp_path).start()


@pytest.mark.parametrize("how", ["runserver", "daphne"])
def test_stop_frees_the_port_and_ends_every_process(how):
    """After stop(), the port is free and the server's whole process group is gone, reloader included."""
    server = Server(get_step(4), how=how, reload=(how == "runserver")).start()
    pgid, port = server.pid, server.port
    server.stop()
    assert not group_alive(pgid)
    assert port_is_free(port)


def test_a_server_dies_with_the_process_that_started_it(tmp_path):
    """If the starting process is killed outright, the guard takes its server down too."""
    port_file = tmp_path / "port"
    script = textwrap.dedent(f"""
        import pathlib, time
        from workbook import Server, get_step
        server = Server(get_step(4)).start()
        pathlib.Path({str(port_file)!r}).write_text(f"{{server.port}} {{server.pid}}")
        time.sleep(600)
    """)
    parent = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, start_new_session=True)
    try:
        assert wait_until(lambda: port_file.exists() and port_file.read_text())
        port, pgid = map(int, port_file.read_text().split())
        assert not port_is_free(port)
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(TIMEOUT)
        assert wait_until(lambda: not group_alive(pgid)), "the server outlived its parent"
        assert wait_until(lambda: port_is_free(port))
    finally:
        if parent.poll() is None:
            parent.kill()


def test_the_diff_of_a_step_shows_its_idea():
    """The 03→04 diff adds routing.py and the websocket entry, coloured on request."""
    text = unified(get_step(3), get_step(4))
    assert "+++ 04-routing/chat/routing.py" in text
    assert "+    'websocket': AuthMiddlewareStack(" in text
    assert "-from channels.routing import ProtocolTypeRouter" in text
    assert "\033[32m+" in unified(get_step(3), get_step(4), color=True)


def test_the_html_diff_highlights_additions_and_removals():
    """The HTML diff marks added lines green and removed lines red, one block per file."""
    html = as_html(get_step(3), get_step(4))
    assert html._repr_html_() == str(html)
    assert '<span class="add">+from channels.auth import AuthMiddlewareStack</span>' in html
    assert '<span class="del">-from channels.routing import ProtocolTypeRouter</span>' in html
    assert html.count("<h4>") == len(get_step(4).changed)


def test_diff_from_the_cli_defaults_to_the_previous_step():
    """`python -m workbook diff 4` compares step 3 with step 4; `diff 2 4` spans two steps."""
    one = run_python("-m", "workbook", "diff", "4", "--color", "never")
    assert one.returncode == 0
    assert one.stdout.startswith("# step 3 (03-scope) → step 4 (04-routing)")
    two = run_python("-m", "workbook", "diff", "2", "4", "--color", "never")
    assert "+++ 04-routing/chat/routing.py" in two.stdout and "03-scope" not in two.stdout


def test_list_shows_every_step_in_order():
    """`python -m workbook list` prints one row per step, in the registry's order."""
    out = run_python("-m", "workbook", "list").stdout
    rows = [line for line in out.splitlines() if line[:1].isdigit()]
    assert [int(row.split()[0]) for row in rows] == [s.number for s in load_steps()]


def test_scope_prints_what_the_consumer_sees():
    """`python -m workbook scope 3` connects in-process and prints the scope."""
    out = run_python("-m", "workbook", "scope", "3").stdout
    assert "'type': 'websocket'" in out and "'path': '/ws/chat/'" in out


def test_every_step_has_a_previous_one_down_to_the_baseline():
    """Each step's previous step is the one numbered before it; step 1's is the startproject baseline."""
    steps = load_steps()
    assert previous(steps[0]).id == "00-startproject"
    assert all(previous(b) == a for a, b in zip(steps, steps[1:], strict=False))


@pytest.mark.skipif(installed_uv() is None and not os.environ.get("CI"), reason="uv makes this fast")
def test_a_fresh_checkout_bootstraps_its_own_virtualenv(tmp_path):
    """From a python without the venv, `python -m workbook list` creates .venv from the lock and runs."""
    system_python = getattr(sys, "_base_executable", None) or shutil.which("python3")
    env = {**os.environ, "WORKBOOK_VENV": str(tmp_path / "venv")}
    env.pop("VIRTUAL_ENV", None)
    result = subprocess.run(
        [system_python, "-m", "workbook", "list"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert "setting up venv/ from uv.lock" in result.stderr
    assert "Bare ASGI" in result.stdout
    assert (tmp_path / "venv/.installed-base").exists()


def test_a_failing_install_is_one_line_pointing_at_the_log(tmp_path):
    """A wheelhouse that lacks the lock's wheels ends in one line naming the setup log, not a traceback."""
    from workbook.environment import venv

    empty = tmp_path / "wheelhouse"
    empty.mkdir()
    with pytest.raises(WorkbookError) as problem:
        venv.ensure("base", venv=tmp_path / "venv", quiet=True, wheelhouse=empty)
    message = str(problem.value)
    assert message.startswith("installing the packages failed")
    assert ".workbook/logs/setup.log" in message and "wheelhouse" in message and "\n" not in message


def test_final_is_diffed_against_the_step_it_hardens_not_the_last_step():
    """`diff final` starts from the step steps.toml names as final's base, even when later steps exist."""
    from workbook.registry import ROOT, final

    text = (ROOT / "steps" / "steps.toml").read_text(encoding="utf-8")
    named = int(re.search(r"^\[final\][^\[]*?^base = (\d+)$", text, re.M | re.S)[1])
    project = final()
    assert project.number == len(load_steps()) + 1
    assert previous(project).number == project.base == named


async def test_a_served_step_reloads_an_edited_file_with_one_django_process_at_a_time(tmp_path, serve):
    """With reload on, an edited consumer is served after Django restarts; the guard is runserver's outer process."""
    import psutil

    from workbook import client
    from workbook.registry import project_files

    copy = tmp_path / "04-routing"
    for name in project_files(get_step(4).path):
        (copy / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(get_step(4).path / name, copy / name)
    server = serve(copy, reload=True)
    assert await client.echo(server.ws_url(), "before", quiet=True) == {"message": "before"}
    consumer = copy / "chat" / "consumers.py"
    edited = consumer.read_text().replace("'message': message,", "'message': message.upper(),")
    deadline = time.monotonic() + TIMEOUT
    # Django's reloader takes a file's first mtime as its baseline, once a second: write until it sees a change.
    while "consumers.py changed, reloading." not in server.log_text():
        assert time.monotonic() < deadline, server.log_text()[-500:]
        consumer.write_text(edited)
        await asyncio.sleep(0.3)
    server.wait_for_log(r"consumers\.py changed, reloading\..*Quit the server with")
    server.wait_ready()  # the new inner process listens again
    assert await client.echo(server.ws_url(), "after", quiet=True) == {"message": "AFTER"}
    runservers = [p for p in psutil.Process(server.pid).children(recursive=True) if "runserver" in p.cmdline()]
    assert len(runservers) == 1 and runservers[0].environ().get("RUN_MAIN") == "true"
    pgid, port = server.pid, server.port
    server.stop()
    assert not group_alive(pgid) and port_is_free(port)
