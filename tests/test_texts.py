"""The prose says what the code does: credits, goals, hints and the facts STEP.md files state about Channels."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from conftest import STEPS

from workbook import get_step
from workbook.communicator import drive
from workbook.learner.checks import run_checks
from workbook.registry import ROOT

ARTICLE = ("Django channels: consumers, environments and events", "Eduardo Zepeda", "2021-11-09", "coffeebytes.dev")
STEP_TEXTS = [pytest.param(step.path / "STEP.md", id=step.id) for step in STEPS if step.number]


@pytest.mark.parametrize("page", [ROOT / "README.md", *(get_step(n).path / "STEP.md" for n in range(1, 6))],
                         ids=["README", *(get_step(n).id for n in range(1, 6))])
def test_the_article_is_named_and_credited_where_the_workbook_follows_it(page):
    """README and STEP 01–05 give the article's title, author, date and site."""
    text = " ".join(page.read_text(encoding="utf-8").split())
    for fact in ARTICLE:
        assert fact in text, f"{page.relative_to(ROOT)} does not say {fact!r}"


@pytest.mark.parametrize("page", STEP_TEXTS)
def test_a_step_that_mentions_the_article_says_whose_it_is(page):
    """A STEP.md that speaks of "the article" names its author, so a reader can find it."""
    text = page.read_text(encoding="utf-8")
    if "article" in text:
        assert "Eduardo Zepeda" in text


def test_step_06_lists_the_characters_channels_accepts_in_a_group_name():
    """STEP 06 names `.` among a group name's characters, as the installed channels accepts it."""
    from channels.layers import BaseChannelLayer

    layer = BaseChannelLayer()
    layer.require_valid_group_name("chat_kitchen.v2-b_c")
    with pytest.raises(TypeError):
        layer.require_valid_group_name("chat_no spaces")
    with pytest.raises(TypeError):
        layer.require_valid_group_name("x" * layer.MAX_NAME_LENGTH)
    text = " ".join((get_step(6).path / "STEP.md").read_text(encoding="utf-8").split())
    assert "`-`, `_` and `.`" in text
    assert f"fewer than {layer.MAX_NAME_LENGTH}" in text
    assert not re.search(r"refuses? (other characters|`\.`)", text)


def test_step_7s_first_hint_names_every_file_the_step_changes():
    """Step 07's first hint names each file steps.toml lists as changed, not settings.py alone."""
    step = get_step(7)
    first = step.hints[0]
    missing = [name for name in step.changed if name not in first]
    assert not missing, f"the first hint of step 7 leaves out {missing}"


def test_step_2s_goal_says_what_its_disconnect_does():
    """Step 02's goal promises a printed close code, and its consumer prints one when a client disconnects."""
    step = get_step(2)
    assert "close code" in step.goal and "goodbye" not in step.goal
    assert "a client disconnected, close code 1000" in drive(step, [])["printed"]


def test_channels_is_optional_in_installed_apps_as_step_01_says(tmp_path):
    """Step 01 without 'channels' in INSTALLED_APPS passes every learner check, since that app only adds runworker."""
    import channels
    from channels.apps import ChannelsConfig

    folder = Path(channels.__file__).parent / "management" / "commands"
    commands = sorted(p.stem for p in folder.glob("*.py") if p.stem != "__init__")
    assert commands == ["runworker"] and "ready" not in vars(ChannelsConfig)
    step = get_step(1)
    assert "optional" in (step.path / "STEP.md").read_text(encoding="utf-8")
    project = tmp_path / "project"
    shutil.copytree(step.path, project, ignore=shutil.ignore_patterns("__pycache__", "db.sqlite3"))
    settings = project / "mychannels" / "settings.py"
    text = settings.read_text(encoding="utf-8")
    assert "    'channels',\n" in text
    settings.write_text(text.replace("    'channels',\n", ""), encoding="utf-8")
    results = run_checks(step, project)
    assert [r.name for r in results if not r.passed] == []


def test_final_md_teaches_each_new_channels_idea_and_why_dispatch_skips_a_database_hop():
    """FINAL.md explains the validator, the plain async consumer, dispatch() and StopConsumer where they appear."""
    import inspect

    from channels.consumer import AsyncConsumer

    text = " ".join((ROOT / "final" / "FINAL.md").read_text(encoding="utf-8").split())
    for idea in ("AllowedHostsOriginValidator", "AsyncWebsocketConsumer", "`dispatch()`", "StopConsumer"):
        assert f"{idea} (new" in text or f"{idea}` (new" in text, f"FINAL.md does not introduce {idea}"
    # Channels' dispatch() closes stale connections before every event. Final's skips that hop, which is safe only
    # while every query of the consumer runs in database_sync_to_async (it closes them in its own hop).
    assert "close_old_connections" in inspect.getsource(AsyncConsumer.dispatch)
    consumer = (ROOT / "final" / "chat" / "consumers.py").read_text(encoding="utf-8")
    assert "async def dispatch(" in consumer and "@database_sync_to_async" in consumer
    assert not re.search(r"\.a(create|get|count|update|delete|save)\(|async for ", consumer), "async ORM in final"
    assert "database_sync_to_async" in text and "calls the handler without that trip" in text


LOGIN = """
from django.contrib.auth import get_user_model
from django.test import Client
from channels.auth import UserLazyObject
user = get_user_model().objects.create_user('ada')  # no password: force_login needs none, and none is hashed
client = Client()
client.force_login(user)
shown = UserLazyObject()
shown._wrapped = user
print(client.cookies['sessionid'].value, repr(shown).startswith('<channels.auth.UserLazyObject object at'), str(shown))
"""


async def test_after_a_login_step_04_prints_the_session_cookie_and_str_of_the_user_names_you(serve, tmp_path):
    """Logged in, the printed scope shows a UserLazyObject and the sessionid cookie; str() of the user is the name."""
    from conftest import run_python
    from websockets.asyncio.client import connect

    from workbook.servers.migrate import migrate_if_needed
    from workbook.servers.server import Server

    project = tmp_path / "project"
    shutil.copytree(get_step(4).path, project, ignore=shutil.ignore_patterns("__pycache__", "db.sqlite3"))
    assert migrate_if_needed(Server(project, port=1)) is True  # the runner's migrate: a copy of its seed, if it has one
    made = run_python("manage.py", "shell", "-c", LOGIN, cwd=project)
    assert made.returncode == 0, made.stderr
    session, lazy_repr, name = made.stdout.splitlines()[-1].split()
    assert (lazy_repr, name) == ("True", "ada")
    server = serve(project)
    async with connect(server.ws_url(), origin=server.http_url.rstrip("/"),
                       additional_headers={"Cookie": f"sessionid={session}"}) as ws:
        await ws.send('{"message": "hi"}')
        await ws.recv()
    printed = server.wait_for_log(r"a client disconnected").string
    assert f"'cookies': {{'sessionid': '{session}'}}" in printed
    assert "'user': <channels.auth.UserLazyObject object at" in printed
