"""Learner mode, played by a learner: start a step, do it (or half of it), check, get hints, reset."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import STEPS, need, run_python, steps

from workbook import WorkbookError, get_step
from workbook.diffs import changed_files
from workbook.environment.pythonpath import importable
from workbook.learner import checks_tests, probe
from workbook.learner import workspace as learner
from workbook.learner.check_base import Failed, Run, Unavailable
from workbook.learner.checks import Result, checks_for, redis_shares_rooms, run_checks
from workbook.learner.checks_groups import rooms_share_messages
from workbook.registry import ROOT, previous
from workbook.servers.server import TIMEOUT, Server, free_port

# For each step: the file a learner forgets, and what the failing check's hint must name.
PARTIAL = {
    1: ("mychannels/asgi.py", "ProtocolTypeRouter"),
    2: ("chat/consumers.py", "chat/consumers.py"),
    3: ("chat/consumers.py", "pprint(self.scope)"),
    4: ("mychannels/asgi.py", 'ProtocolTypeRouter in mychannels/asgi.py has no "websocket" entry'),
    5: ("templates/index.html", "new WebSocket("),
    6: ("chat/routing.py", "chat/routing.py has no route for a room"),
    7: (None, "RedisChannelLayer"),
    8: ("chat/consumers.py", "subclass AsyncJsonWebsocketConsumer"),
    9: ("chat/consumers.py", "self.scope['user'].is_authenticated"),
    10: ("chat/consumers.py", "await Message.objects.acreate("),
    11: ("chat/tests.py", "write one test for each"),
}
# Step 7 done halfway: everything copied, but the REDIS_URL branch still picks the in-memory layer.
HALF_DONE = {
    7: ("mychannels/settings.py", "channels_redis.core.RedisChannelLayer", "channels.layers.InMemoryChannelLayer"),
}


@pytest.fixture
def ws(tmp_path, monkeypatch):
    """A throwaway workspace: the learner's real workspace/ is never touched."""
    monkeypatch.setenv("WORKBOOK_WORKSPACE", str(tmp_path / "workspace"))
    monkeypatch.delenv("MAKELEVEL", raising=False)
    return tmp_path / "workspace"


def apply(step, ws, leave_out: str | None = None) -> None:
    """Do the step the way its snapshot did: copy its changed files over, perhaps forgetting one."""
    for name in step.changed:
        if name != leave_out:
            (ws / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(step.path / name, ws / name)


def need_redis_for(step) -> None:
    """Step 7's check runs two servers on a real Redis: skip on a laptop without one, fail in CI."""
    if redis_shares_rooms in checks_for(step):
        need(shutil.which("redis-server") is not None, "redis-server", "install it (e.g. apt install redis-server)")


class Stop(Exception):
    """Raised from run_checks' report at the first failing check: the checks after it are not run."""


def first_failure(step, ws) -> Result | None:
    """Check the workspace as `check` does, up to the first failing check (whose hint a learner reads first)."""
    def report(result: Result) -> None:
        if result.status == "fail":
            raise Stop(result)

    try:
        run_checks(step, ws, report=report)
    except Stop as stop:
        return stop.args[0]
    return None


def backups(ws):
    folder = learner.backups_dir(ws)
    return sorted(folder.iterdir()) if folder.exists() else []


def test_step_1_starts_from_the_untouched_startproject_output(ws):
    """`start 1` fills the workspace with steps/00-startproject, file for file, and remembers step 1."""
    learner.start(1)
    assert changed_files(get_step(0).path, ws) == []
    assert learner.current_step(ws).number == 1


@pytest.mark.parametrize("step", steps())
def test_doing_the_steps_real_changes_makes_the_workspace_its_snapshot(step, ws):
    """Start, copy the snapshot's changed files in: the checks then see the snapshot test_checks.py passes."""
    learner.start(step.number)
    assert changed_files(previous(step).path, ws) == []
    apply(step, ws)
    assert changed_files(step, ws) == []


def watch_correct_runs(monkeypatch) -> list:
    """Record each `manage.py test` run on the step's own consumer that step 11's checks read, as it finishes.

    With it, the checks' own run also proves what the step's tests are: 7 of them, none skipped, and a test
    database Django removed again (the run's copy is gone once the checks end, so it is looked at here).
    """
    seen = []
    read = checks_tests.Runs.__getitem__

    def recording(runs, name: str):
        result = read(runs, name)
        if name == "correct" and not any(entry[0] is result for entry in seen):
            copy = Path(runs._scratch.name) / name
            seen.append((result, sorted(path.name for path in copy.rglob("test-db.sqlite3*"))))
        return result

    monkeypatch.setattr(checks_tests.Runs, "__getitem__", recording)
    return seen


# That every check passes on each snapshot is test_stages.py's; here learner mode plays it once end to end, on the
# last step ("That was the last step", its database created fresh in the workspace). Step 4's "Next: …" is the
# make test's below.
@pytest.mark.browser
@pytest.mark.parametrize("step", steps(STEPS[-1].number))
def test_doing_the_steps_real_changes_passes_its_check(step, ws, capsys, monkeypatch):
    """Start, copy the snapshot's changed files in, check: every check passes and the exit code is 0.

    On step 11 the step's own tests run under the workbook's venv: all 7, the browser one included, pass.
    """
    need_redis_for(step)
    learner.start(step.number)
    assert changed_files(previous(step).path, ws) == []
    apply(step, ws)
    correct_runs = watch_correct_runs(monkeypatch)
    code = learner.check()
    out = capsys.readouterr().out
    if step.number == 11:
        [(run, left_behind)] = correct_runs
        if run.passed and run.skipped():
            need(False, "Chromium for the step's browser test", run.skipped()[0])
        assert run.passed, run.first_failure()
        assert run.count == 7, run.summary
        assert left_behind == [], "the test database was left behind"
    assert code == 0, out
    assert "checks pass" in out and "✘" not in out and "FAIL" not in out
    assert ("That was the last step." if step == STEPS[-1] else "Next: ") in out


@pytest.mark.parametrize("step", [
    pytest.param(step, id=step.id, marks=[pytest.mark.redis] * (redis_shares_rooms in checks_for(step)))
    for step in STEPS if step.number in PARTIAL
])
def test_half_done_step_fails_with_the_hint_that_names_what_is_missing(step, ws):
    """Leaving out one file of the step fails its check, and the first hint names what is missing."""
    need_redis_for(step)
    leave_out, named = PARTIAL[step.number]
    learner.start(step.number)
    apply(step, ws, leave_out=leave_out)
    if step.number in HALF_DONE:
        name, done, undone = HALF_DONE[step.number]
        (ws / name).write_text((ws / name).read_text().replace(done, undone))
    failure = first_failure(step, ws)
    assert failure is not None and named in failure.hint, failure


# Step 8 converted halfway: (what the snapshot's consumer says, what the learner wrote instead, the hint's words).
HALF_ASYNC = {
    "no-await": [("await self.channel_layer.group_send(", "self.channel_layer.group_send(")],
    "plain-def": [("async def chat_message", "def chat_message"), ("await self.send_json(", "self.send_json(")],
    "await-in-def": [("async def chat_message", "def chat_message")],
    "still-receive": [("async def receive_json(self, content):\n", "async def receive(self, text_data):\n"
                       "        content = json.loads(text_data)\n")],
    "blocking": [("import json\n", "import json\nimport time\n"),
                 ("        message = content['message']\n", "        message = content['message']\n"
                                                          "        time.sleep(0.1)\n")],
}
HALF_ASYNC_HINTS = {
    "no-await": "write await self.channel_layer.group_send(",
    "plain-def": "make chat_message async def",
    "await-in-def": "make that method async def",
    "still-receive": "rename it receive_json(self, content)",
    "blocking": "await asyncio.sleep(",
}


@pytest.mark.parametrize("mistake", sorted(HALF_ASYNC))
def test_step_8_converted_halfway_fails_with_the_hint_for_that_mistake(mistake, ws):
    """A missing await, a plain def, a leftover receive() or a time.sleep each fail step 8 with their own hint."""
    step = get_step(8)
    need_redis_for(step)
    learner.start(8)
    apply(step, ws)
    consumer = ws / "chat" / "consumers.py"
    text = consumer.read_text()
    for done, undone in HALF_ASYNC[mistake]:
        assert done in text
        text = text.replace(done, undone, 1)
    consumer.write_text(text)
    failure = first_failure(step, ws)
    assert failure is not None and HALF_ASYNC_HINTS[mistake] in failure.hint, failure


def test_the_redis_check_is_not_run_when_one_servers_own_clients_do_not_share_a_room(monkeypatch):
    """After the one-server room check fails, the two-server Redis check is reported as not run, starting nothing."""
    need_redis_for(get_step(8))
    run = Run(get_step(8).path, label="no-rooms")
    monkeypatch.setattr(run, "websocket", lambda action: ({"a": "nothing", "b": "nothing"}, ""))
    monkeypatch.setattr(Server, "start", lambda server: pytest.fail("the Redis check started a server"))
    with pytest.raises(Failed, match="A heard 'nothing'"):
        rooms_share_messages(run)
    with pytest.raises(Unavailable, match="fix the failure above first"):
        redis_shares_rooms(run)


# Step 10 done with one mistake: (file, what the snapshot says, what the learner wrote instead, the hint's words).
HALF_HISTORY = {
    "sync-create": ("chat/consumers.py", "await Message.objects.acreate(", "Message.objects.create(",
                    "Await the async ORM: await Message.objects.acreate("),
    "lazy-user": ("chat/consumers.py", ".select_related('user')", "",
                  "select_related('user') for a foreign key you read"),
    "newest-first": ("chat/consumers.py", "in reversed(history)", "in history", "send them oldest first"),
    "no-migration": ("chat/migrations/0001_initial.py", None, None, "python manage.py makemigrations chat"),
    # Step 9's command, broken since: the history checks cannot log alice and bob in.
    "broken-demo-users": ("chat/management/commands/demo_users.py", "'alice': 'alice-password'",
                          "'alice': ALICE_PASSWORD", "keep step 09's chat/management/commands/demo_users.py"),
}


@pytest.mark.parametrize("mistake", sorted(HALF_HISTORY))
def test_step_10_with_one_mistake_fails_with_the_hint_for_that_mistake(mistake, ws):
    """A sync create, a lazy foreign key, newest-first history or a missing migration each get their own hint."""
    step = get_step(10)
    learner.start(10)
    name, done, undone, hint = HALF_HISTORY[mistake]
    apply(step, ws, leave_out=name if done is None else None)
    if done is not None:
        text = (ws / name).read_text()
        assert done in text
        (ws / name).write_text(text.replace(done, undone, 1))
    failure = first_failure(step, ws)
    assert failure is not None and hint in failure.hint, failure


def test_routing_without_the_routing_module_names_the_file_line_and_missing_module(ws, capsys):
    """asgi.py importing a chat/routing.py that does not exist is an import error with file and line."""
    step = get_step(4)
    learner.start(4)
    apply(step, ws, leave_out="chat/routing.py")
    assert learner.check() == 1
    out = capsys.readouterr().out
    line = next(n for n, text in enumerate((ws / "mychannels/asgi.py").read_text().splitlines(), 1)
                if "chat.routing" in text)
    assert f"mychannels/asgi.py, line {line}: ModuleNotFoundError: No module named 'chat.routing'" in out
    assert "hint: chat/routing.py does not exist yet" in out


def test_a_syntax_error_is_reported_with_its_file_and_line(ws, capsys):
    """A broken line stops the check at compiling, naming the file and line; nothing else runs."""
    learner.start(4)
    apply(get_step(4), ws)
    routing = ws / "chat" / "routing.py"
    lines = routing.read_text().splitlines()
    lines[4] = "websocket_urlpatterns = = ["  # line 5 of chat/routing.py
    routing.write_text("\n".join(lines) + "\n")
    assert learner.check() == 1
    out = capsys.readouterr().out
    assert "chat/routing.py, line 5" in out and "SyntaxError" in out
    assert "not run: fix the failure above first" in out
    assert "the server starts" in out


def test_an_error_in_the_consumer_points_at_its_line(ws, capsys):
    """A consumer that raises on every message is reported with the file and line that raised."""
    learner.start(4)
    apply(get_step(4), ws)
    consumers = ws / "chat" / "consumers.py"
    consumers.write_text(consumers.read_text().replace("['message']", "['text']"))
    assert learner.check() == 1
    out = capsys.readouterr().out
    line = next(n for n, text in enumerate(consumers.read_text().splitlines(), 1) if "['text']" in text)
    assert f"chat/consumers.py, line {line}: KeyError: 'text'" in out


def test_reset_restores_the_start_and_keeps_a_backup(ws, capsys):
    """`reset` puts the step's starting files back; the learner's edits survive in a backup."""
    learner.start(4)
    apply(get_step(4), ws, leave_out="mychannels/asgi.py")
    (ws / "notes.txt").write_text("my notes\n")
    message = learner.reset()
    assert changed_files(get_step(3).path, ws) == []
    assert learner.current_step(ws).number == 4
    [kept] = backups(ws)
    assert str(kept.name) in message
    assert (kept / "notes.txt").read_text() == "my notes\n"
    assert (kept / "chat" / "routing.py").read_bytes() == (get_step(4).path / "chat" / "routing.py").read_bytes()


def test_work_is_never_replaced_without_replace_and_then_only_after_a_backup(ws):
    """`start` refuses a workspace that holds work; with replace it backs the work up first."""
    learner.start(2)
    consumers = ws / "chat" / "consumers.py"
    consumers.parent.mkdir()
    consumers.write_text("# my consumer\n")
    with pytest.raises(WorkbookError, match="holds your work.*--replace"):
        learner.start(3)
    assert consumers.read_text() == "# my consumer\n" and backups(ws) == []
    learner.start(3, replace=True)
    [kept] = backups(ws)
    assert (kept / "chat" / "consumers.py").read_text() == "# my consumer\n"
    assert changed_files(get_step(2).path, ws) == []


def test_a_workspace_without_a_step_file_counts_as_work(ws):
    """Files in the workspace that learner mode did not put there are never overwritten silently."""
    ws.mkdir()
    (ws / "manage.py").write_text("# someone's project\n")
    with pytest.raises(WorkbookError, match="holds your work"):
        learner.start(1)
    assert (ws / "manage.py").read_text() == "# someone's project\n"


def test_an_untouched_workspace_moves_to_another_step_without_a_backup(ws):
    """Starting over from a workspace nobody edited loses nothing, so it needs no --replace."""
    learner.start(2)
    learner.start(5)
    assert backups(ws) == [] and learner.current_step(ws).number == 5


def test_hints_come_one_more_each_time_then_point_to_the_solution(ws):
    """`hint` shows the step's hints in order, remembers how many, then points at `solution`."""
    step = get_step(4)
    learner.start(4)
    shown = [learner.next_hint() for _ in step.hints]
    assert [text.split(": ", 1)[1] for text in shown] == list(step.hints)
    assert shown[0].startswith(f"hint 1/{len(step.hints)} for step 4")
    assert "solution" in learner.next_hint()


@pytest.mark.parametrize("step", steps())
def test_each_step_has_at_least_three_hints_and_its_minutes(step):
    """The registry gives every step three or more hints, teaching minutes and exercise minutes."""
    assert len(step.hints) >= 3
    assert step.teach > 0 and step.exercise > 0 and step.minutes == step.teach + step.exercise


def test_the_solution_is_the_diff_to_the_steps_snapshot(ws):
    """`solution` diffs the workspace against the snapshot; once done, nothing is left."""
    learner.start(4)
    text = learner.solution()
    assert "+++ 04-routing/chat/routing.py" in text and "+++ 04-routing/mychannels/asgi.py" in text
    apply(get_step(4), ws)
    assert "nothing left to do" in learner.solution()


def test_check_on_the_command_line_exits_1_and_prints_one_line_per_check(ws):
    """`python -m workbook check 4` on a step-3 workspace prints each check and exits 1."""
    learner.start(4)
    result = run_python("-m", "workbook", "check", "4", env={"WORKBOOK_WORKSPACE": str(ws)})
    assert result.returncode == 1, result.stderr
    lines = [line for line in result.stdout.splitlines() if line.startswith("  ") and not line.startswith("     ")]
    assert len(lines) == 7, result.stdout
    assert sum(line.lstrip().startswith(("✘", "FAIL")) for line in lines) == 3, result.stdout


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed: `python -m workbook …` is tested")
def test_make_step_n_start_and_make_check_work_on_the_workspace(ws):
    """`make step-4 start` fills the workspace, and `make check` checks it against step 4."""
    env = {**os.environ, "WORKBOOK_WORKSPACE": str(ws)}
    started = subprocess.run(["make", "--no-print-directory", "step-4", "start"], cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=TIMEOUT * 4)
    assert started.returncode == 0, started.stderr
    assert "`make check`" in started.stdout
    apply(get_step(4), ws)
    checked = subprocess.run(["make", "--no-print-directory", "check"], cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=TIMEOUT * 4)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "against step 4" in checked.stdout
    assert "checks pass" in checked.stdout and "✘" not in checked.stdout and "FAIL" not in checked.stdout
    assert "Next: `make step-5 start REPLACE=1`." in checked.stdout


def test_run_workspace_serves_the_learners_project(ws):
    """`python -m workbook run workspace` serves the workspace's own page, like any step."""
    learner.start(2)
    page = ws / "templates" / "index.html"
    page.write_text(page.read_text().replace("Step 01 · Bare ASGI", "My own step"))
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "workbook", "run", "workspace", "--port", str(port), "--no-reload"],
        cwd=ROOT, env={**os.environ, "WORKBOOK_WORKSPACE": str(ws)},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    try:
        deadline, body = time.monotonic() + TIMEOUT, ""
        while time.monotonic() < deadline and process.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as response:
                    body = response.read().decode()
                break
            except OSError:
                time.sleep(0.1)
        assert "My own step" in body
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(TIMEOUT)


def test_check_without_a_started_step_says_how_to_start(ws):
    """With no step started, `check` explains how to start one instead of failing obscurely."""
    with pytest.raises(WorkbookError, match="start 1"):
        learner.check()



def test_the_facts_are_remembered_under_every_file_and_the_environment_the_project_reads(ws, monkeypatch):
    """The facts memo's key changes with any project file, a variable the settings read and the interpreter; not
    with a database, nor with the directory the same files are in."""
    learner.start(7)
    apply(get_step(7), ws)  # step 7's settings read REDIS_URL
    env = {"PYTHONPATH": str(ws)}
    key = probe.inputs(ws, env)
    elsewhere = shutil.copytree(ws, ws.with_name("a-copy"))
    assert probe.inputs(elsewhere, {"PYTHONPATH": str(elsewhere)}) == key
    assert probe.inputs(elsewhere, {"PYTHONPATH": str(ws)}) != key  # the copy would import the other's code
    with monkeypatch.context() as patched:
        patched.setattr(probe, "_interpreter", lambda: "another Python, or other packages")
        assert probe.inputs(ws, env) != key
    assert probe.inputs(ws, {**env, "SOMETHING_ELSE": "1"}) == key
    assert probe.inputs(ws, {**env, "REDIS_URL": "redis://127.0.0.1:1/0"}) != key
    assert probe.inputs(ws, {**env, "DJANGO_SETTINGS_MODULE": "elsewhere.settings"}) != key
    (ws / "db.sqlite3").write_bytes(b"rows and sessions")
    assert probe.inputs(ws, env) == key
    consumers = ws / "chat" / "consumers.py"
    consumers.write_text(consumers.read_text() + "\n")
    assert probe.inputs(ws, env) != key


def test_facts_load_once_for_the_same_files_and_a_failure_is_not_remembered(ws, monkeypatch, tmp_path):
    """The second copy of a step gets the first one's facts from .workbook/facts/ without a probe; a project that
    fails to load is probed again each time, and says why each time."""
    monkeypatch.setattr(probe, "MEMO", tmp_path / "facts")
    runs, run = [], subprocess.run
    monkeypatch.setattr(probe.subprocess, "run", lambda *a, **k: runs.append(k["cwd"]) or run(*a, **k))
    step = get_step(8)
    first, second = (shutil.copytree(step.path, tmp_path / name) for name in ("first", "second"))
    facts = [probe.load(project, "mychannels", importable(os.environ, project, ROOT)) for project in (first, second)]
    assert runs == [first] and facts[0] == facts[1]
    assert facts[0]["consumer_class"]["bases"][0] == "AsyncJsonWebsocketConsumer"
    settings = second / "mychannels" / "settings.py"
    settings.write_text(settings.read_text() + "\nraise RuntimeError('a typo')\n")
    for _ in range(2):
        failed = probe.load(second, "mychannels", importable(os.environ, second, ROOT))
        assert isinstance(failed, subprocess.CompletedProcess) and "a typo" in failed.stderr
    assert runs == [first, second, second]
