"""Step 11's check: the learner's tests pass on the step's consumer and fail on each broken copy of it."""

from __future__ import annotations

import re
import shutil

import pytest
from conftest import need

from workbook import get_step
from workbook.learner import checks_tests as ct
from workbook.learner.check_base import Failed, Run

STEP = get_step(11)
CATCHES = {"drops-user": ct.catches_drops_user, "leaky-rooms": ct.catches_leaky_rooms,
           "no-history": ct.catches_no_history}

# Tests a learner might write that check only what a message says, never who sent it, nor history, nor rooms.
MESSAGES_ONLY = '''from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import Client, TransactionTestCase
from channels.testing import WebsocketCommunicator

from mychannels.asgi import application


class EchoTests(TransactionTestCase):
    async def test_a_message_comes_back(self):
        communicator = WebsocketCommunicator(application, '/ws/chat/kitchen/', headers=[(b'cookie', self.cookie)])
        self.assertTrue((await communicator.connect())[0])
        try:
            await communicator.send_json_to({'message': 'hello'})
            self.assertEqual((await communicator.receive_json_from())['message'], 'hello')
        finally:
            await communicator.disconnect()

    def setUp(self):
        client = Client()
        client.force_login(get_user_model().objects.create_user('alice'))
        self.cookie = f'sessionid={client.cookies[settings.SESSION_COOKIE_NAME].value}'.encode()
'''


def without(source: str, *names: str) -> str:
    """Remove test methods or classes, by name, from a tests.py."""
    for name in names:
        block = re.search(rf"^( *)(async def|def|class) {name}\b.*?(?=^\1(?:async def|def|class|@)|^\S|\Z)",
                          source, re.M | re.S)
        assert block, f"{name} is not in the step's tests.py"
        source = source[:block.start()] + source[block.end():]
    return source


def project_with(tmp_path, tests: str):
    """Copy the step, with `tests` as its chat/tests.py."""
    project = ct.copy_project(STEP.path, tmp_path, ct.reference_consumer())
    (project / "chat" / "tests.py").write_text(tests, encoding="utf-8")
    return project


def outcome(func, run: Run) -> tuple[str, str, str]:
    try:
        func(run)
    except Failed as failure:
        return "fail", failure.detail, failure.hint
    return "pass", "", ""


@pytest.mark.parametrize("fault", sorted(ct.FAULTS))
def test_each_fault_changes_the_steps_consumer_in_its_one_place(fault):
    """Every fault applies to the step's consumer exactly once and leaves valid Python."""
    broken = ct.broken_consumer(fault)
    assert broken != ct.reference_consumer()
    compile(broken, "consumers.py", "exec")


def test_a_fault_that_no_longer_fits_the_consumer_is_an_error():
    """A consumer without the spot a fault changes raises, rather than running an unbroken copy."""
    with pytest.raises(ValueError, match="exactly once"):
        ct.broken_consumer("no-history", "class ChatConsumer: pass\n")


CASES = {
    # What the learner's tests leave out, and so which faults they must miss. (Tests that leave out nothing catch
    # every fault: that is the check of steps/11-tests itself, in test_stages.py and test_learner.py.)
    "messages-only": (None, {"drops-user", "leaky-rooms", "no-history"}),
    # One set of runs for two faults: each check reads only its own fault's run, so they cannot mask each other.
    "no-room-or-history-test": (("test_a_message_stays_in_its_room",
                                 "test_two_pages_in_a_room_see_each_others_messages_and_another_room_does_not",
                                 "test_a_newcomer_hears_the_last_20_messages_oldest_first"),
                                {"leaky-rooms", "no-history"}),
}


# Neither case keeps the browser test (it is a room test), so neither needs Chromium.
@pytest.mark.parametrize("case", sorted(CASES))
def test_tests_that_miss_a_fault_fail_its_check_with_the_hint_for_it(case, tmp_path):
    """Tests that pass on a broken copy fail exactly that fault's check, which names it and says what to test."""
    removed, missed = CASES[case]
    source = (STEP.path / "chat" / "tests.py").read_text(encoding="utf-8")
    project = project_with(tmp_path, MESSAGES_ONLY if removed is None else without(source, *removed))
    run = Run(project, label=case)
    try:
        assert outcome(ct.tests_pass, run)[0] == ("fail" if case == "messages-only" else "pass")
        for fault, func in CATCHES.items():
            status, detail, hint = outcome(func, run)
            if fault in missed:
                assert status == "fail", f"{fault} was not reported"
                assert ct.FAULTS[fault][0] in detail and "OK" in detail and hint == ct.HINTS[fault]
            else:
                assert status == "pass", f"{fault}: {detail}"
    finally:
        run.close()


@pytest.mark.browser
def test_a_test_database_in_memory_fails_with_the_settings_hint(tmp_path):
    """Without the file-backed test database, the live-server test errors and the hint names TEST's NAME."""
    need(shutil.which("chromium") is not None, "chromium", "sudo apt-get install chromium")
    project = ct.copy_project(STEP.path, tmp_path, ct.reference_consumer())
    settings = project / "mychannels" / "settings.py"
    text = settings.read_text(encoding="utf-8")
    settings.write_text(re.sub(r"^DATABASES\['default'\]\['TEST'\].*$", "", text, flags=re.M), encoding="utf-8")
    run = Run(project, label="in-memory")
    try:
        status, detail, hint = outcome(ct.tests_pass, run)
    finally:
        run.close()  # stops the runs on the broken copies: only the correct one is read
    assert status == "fail" and "setUpClass" in detail
    assert "DATABASES['default']['TEST']" in hint


def test_a_project_without_a_live_server_test_fails_the_browser_check(tmp_path):
    """tests.py without ChannelsLiveServerTestCase fails the browser check before anything runs."""
    project = project_with(tmp_path, MESSAGES_ONLY)
    status, detail, _ = outcome(ct.browser_test_runs, Run(project, label="no-browser"))
    assert status == "fail" and "ChannelsLiveServerTestCase" in detail


def test_a_skipped_browser_test_is_named_with_its_reason(tmp_path, monkeypatch):
    """With no chromium on PATH and CI unset, the step's browser test is skipped, and the run names it and why."""
    project = ct.copy_project(STEP.path, tmp_path, ct.reference_consumer())
    monkeypatch.setenv("PATH", str(tmp_path / "no-browser-here"))
    monkeypatch.delenv("CI", raising=False)
    result = ct.finish(ct.start_tests(project, labels=("chat.tests.ChatPageTests",)))
    assert result.passed and "skipped=1" in result.summary
    [skipped] = result.skipped()
    assert skipped.startswith("test_two_pages_in_a_room") and "make setup" in skipped
