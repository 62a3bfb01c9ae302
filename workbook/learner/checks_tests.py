"""The checks of step 11: the learner's own tests pass on a correct consumer and fail on broken copies of it.

Each run is `python manage.py test` in a throwaway copy of the project whose chat/consumers.py is the step's
own consumer, whole or with one fault put in. The four runs start at once, in the background, the first time a
check asks for one; each check waits for its own only, and Run.close() stops those nobody waited for.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..registry import STEPS_DIR
from .check_base import IN_PROCESS, Failed, Run, Unavailable, check

STEP = "11-tests"
CONSUMER = "chat/consumers.py"
TESTS = "chat/tests.py"
RUN_TIMEOUT = float(os.environ.get("WORKBOOK_TEST_RUN_TIMEOUT", "300"))

# Each fault: what it breaks, and the replacements that put it into the step's consumer.
FAULTS: dict[str, tuple[str, tuple[tuple[str, str], ...]]] = {
    "drops-user": ("an echo that drops the user", (
        ("            'user': event['user'],\n", ""),
    )),
    "leaky-rooms": ("rooms that leak into each other", (
        ("self.room_group_name = f'chat_{self.room_name}'", "self.room_group_name = 'chat_everyone'"),
    )),
    "no-history": ("a consumer that replays no history", (
        ("history = [message async for message in newest[:HISTORY]]", "history = []"),
    )),
}
HINTS = {
    "drops-user": "compare the whole frame: assertEqual(await communicator.receive_json_from(), "
                  "{'message': 'hello', 'user': 'alice'}), with alice's session cookie in the handshake",
    "leaky-rooms": "connect one communicator to /ws/chat/kitchen/ and one to /ws/chat/garden/; after the kitchen "
                   "talks, the garden's own next message must be the first frame it receives",
    "no-history": "send messages, disconnect, connect a second user to the same room: the first frames it receives "
                  "are those messages, oldest first (and no more than 20)",
}
# What a failing run on the correct consumer usually means, by what it printed.
CAUSES = (
    ("in memory databases", "the live server runs in another process: set DATABASES['default']['TEST'] = "
                            "{'NAME': BASE_DIR / 'test-db.sqlite3'} in the workbook block of settings.py"),
    ("Cannot operate on a closed database", "subclass TransactionTestCase, not TestCase: AuthMiddlewareStack "
                                            "closes the connection a TestCase keeps its transaction open on"),
    ("SynchronousOnlyOperation", "no sync ORM call in an async test or inside Playwright's `with` block: create "
                                 "rows in setUp(), or await the async ORM (acreate, acreate_user)"),
    ("Event loop is closed", "await communicator.disconnect() in a finally: block, before the test returns"),
)
IGNORE = shutil.ignore_patterns("__pycache__", ".git", "db.sqlite3*", "test-db.sqlite3*", "*.pyc")


def reference_consumer() -> str:
    """Return the step's own chat/consumers.py, the correct consumer the learner's tests run against."""
    return (STEPS_DIR / STEP / CONSUMER).read_text(encoding="utf-8")


def broken_consumer(fault: str, source: str | None = None) -> str:
    """Return the step's consumer with one fault put in; fail loudly if the consumer no longer has the spot."""
    text = reference_consumer() if source is None else source
    for old, new in FAULTS[fault][1]:
        if text.count(old) != 1:
            raise ValueError(f"fault {fault}: {old!r} is not in {CONSUMER} exactly once")
        text = text.replace(old, new)
    return text


@dataclass
class TestRun:
    """One finished `manage.py test`: its exit code and what it printed."""

    returncode: int
    stdout: str
    stderr: str

    @property
    def passed(self) -> bool:
        return self.returncode == 0

    @property
    def summary(self) -> str:
        """Return Django's last lines, e.g. `Ran 7 tests: OK (skipped=1)`."""
        ran = re.findall(r"^Ran (\d+) tests? in", self.stderr, re.M)
        verdict = re.findall(r"^(OK.*|FAILED.*)$", self.stderr, re.M)
        count = int(ran[-1]) if ran else 0
        return f"Ran {count} test{'' if count == 1 else 's'}: {verdict[-1] if verdict else 'no verdict'}"

    @property
    def count(self) -> int:
        ran = re.findall(r"^Ran (\d+) tests? in", self.stderr, re.M)
        return int(ran[-1]) if ran else 0

    def first_failure(self) -> str:
        """Name the first failing test and the last line of its traceback, or the last line printed."""
        match = re.search(r"^(FAIL|ERROR): (\w+) \(([\w.]+)\)\n(?:.*\n)?-{20,}\n(.*?)(?=\n={20,}|\n-{20,})",
                          self.stderr, re.M | re.S)
        if match:
            lines = match.group(4).strip().splitlines()
            # The exception's first line follows the last indented line of the traceback's frames.
            frames = [i for i, line in enumerate(lines) if line.startswith(" ")]
            error = lines[frames[-1] + 1] if frames and frames[-1] + 1 < len(lines) else lines[-1]
            return f"{match.group(2)} ({match.group(1)}): {error}"
        lines = self.stderr.strip().splitlines() or self.stdout.strip().splitlines() or ["it printed nothing"]
        return lines[-1]

    def skipped(self) -> list[str]:
        """List `test (reason)` for each skipped test (the run is verbose enough to name them)."""
        return [f"{name}: {why}" for name, why in
                re.findall(r"^(\w+) \([\w.]+\)[^\n]*? \.\.\. skipped '(.*)'$", self.stderr, re.M)]


def copy_project(project: Path, into: Path, consumer: str) -> Path:
    """Copy a project without its databases or caches, with `consumer` as its chat/consumers.py."""
    target = into / project.name
    shutil.copytree(project, target, ignore=IGNORE)
    (target / CONSUMER).write_text(consumer, encoding="utf-8")
    return target


def start_tests(project: Path, python: str = sys.executable, failfast: bool = False,
                labels: tuple[str, ...] = ()) -> subprocess.Popen:
    """Start `python manage.py test` in a project (non-interactive, verbose enough to name each test)."""
    command = [python, "manage.py", "test", "--noinput", "-v", "2", *(["--failfast"] if failfast else []), *labels]
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    # Files, not pipes: a run that prints a lot never waits for the reader, however many run at once.
    out, err = tempfile.TemporaryFile("w+", encoding="utf-8"), tempfile.TemporaryFile("w+", encoding="utf-8")
    process = subprocess.Popen(command, cwd=project, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                               start_new_session=True)
    process.logs = (out, err)
    return process


def _stop(process: subprocess.Popen) -> None:
    """Kill a test run with what it started (the live server's daphne is its child)."""
    if os.name == "nt":
        process.kill()
    else:
        os.killpg(process.pid, signal.SIGKILL)


def finish(process: subprocess.Popen, timeout: float = RUN_TIMEOUT) -> TestRun:
    """Wait for a test run; one that outlives the timeout is stopped and reported as hung."""
    try:
        process.wait(timeout=timeout)
        hung = ""
    except subprocess.TimeoutExpired:
        _stop(process)
        process.wait()
        hung = f"\nstill running after {timeout:.0f} s: a test waits for something that never comes"
    printed = []
    for log in process.logs:
        log.seek(0)
        printed.append(log.read())
        log.close()
    return TestRun(1 if hung else process.returncode, printed[0], printed[1] + hung)


class Runs:
    """A project's tests on the correct consumer and on each broken copy, all started at once; read one by fault."""

    def __init__(self, project: Path, python: str = sys.executable):
        self._scratch = tempfile.TemporaryDirectory(prefix="workbook-tests-")
        self._started, self._done = {}, {}  # by name: each Popen, and its TestRun once waited for
        for name in ("correct", *FAULTS):
            consumer = reference_consumer() if name == "correct" else broken_consumer(name)
            copy = copy_project(project, Path(self._scratch.name) / name, consumer)
            # A broken copy only has to fail once: stop at the first failure.
            self._started[name] = start_tests(copy, python, failfast=name != "correct")

    def __getitem__(self, name: str) -> TestRun:
        if name not in self._done:
            try:
                self._done[name] = finish(self._started[name])
            except BaseException:  # Ctrl-C while waiting: the runs sit in their own sessions, so stop them here
                self.close()
                raise
        return self._done[name]

    def close(self) -> None:
        """Stop the runs nobody waited for, and remove their copies."""
        for process in self._started.values():
            if process.poll() is None:
                _stop(process)
                process.wait()
        self._scratch.cleanup()


def _test_sources(project: Path) -> str:
    """Join the learner's test code: chat/tests.py, or the modules of a chat/tests/ package."""
    files = [project / TESTS] if (project / TESTS).is_file() else sorted((project / "chat" / "tests").glob("*.py"))
    return "\n".join(path.read_text(encoding="utf-8") for path in files)


def _runs(run: Run) -> Runs:
    if getattr(run, "test_runs", None) is None:
        if not _test_sources(run.project):
            raise Failed(f"{TESTS} does not exist", "create it: start from steps/11-tests/chat/tests.py's imports")
        run.test_runs = Runs(run.project)
        run.on_close.append(run.test_runs.close)
    return run.test_runs


@check("`python manage.py test` passes against the step's consumer", served=IN_PROCESS)
def tests_pass(run: Run) -> None:
    correct = _runs(run)["correct"]
    if not correct.passed:
        printed = correct.stdout + correct.stderr
        cause = next((hint for symptom, hint in CAUSES if symptom in printed),
                     "the consumer is the step's own, so the test is wrong: run `python manage.py test` in "
                     "workspace/ and read the whole failure")
        raise Failed(correct.first_failure(), cause)
    if correct.count < 4:
        raise Failed(f"{correct.summary}: too few to cover the echo, the rooms, the refusal and the history",
                     "write one test for each: the sender's name, two rooms, an anonymous socket, the history")


@check("a live-server test drives two rooms in a real browser", served=IN_PROCESS)
def browser_test_runs(run: Run) -> None:
    if "ChannelsLiveServerTestCase" not in _test_sources(run.project):
        raise Failed(f"{TESTS} has no ChannelsLiveServerTestCase",
                     "add a class ChatPageTests(ChannelsLiveServerTestCase) that opens pages with Playwright")
    skipped = _runs(run)["correct"].skipped()
    if skipped:
        raise Unavailable(f"your browser test was skipped ({skipped[0]})")


def _caught(fault: str):
    description = FAULTS[fault][0]

    @check(f"your tests fail against {description}", served=IN_PROCESS)
    def caught(run: Run) -> None:
        result = _runs(run)[fault]
        if result.passed:
            raise Failed(f"{result.summary} against {description}", HINTS[fault])
    caught.__name__ = f"catches_{fault.replace('-', '_')}"
    return caught


catches_drops_user = _caught("drops-user")
catches_leaky_rooms = _caught("leaky-rooms")
catches_no_history = _caught("no-history")
