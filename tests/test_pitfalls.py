"""Every pitfall of the lab shows its symptom for real, and the doctor names it; clean projects pass the doctor."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import DOCTOR_MODULES, STARTED_GROUPS, need, reused_servers, run_python, saved_messages, steps
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidMessage, InvalidStatus

from workbook import Step, client, get_step
from workbook.diffs import changed_files, diff
from workbook.doctor.pitfalls import load_pitfalls, materialise
from workbook.doctor.probe import probe
from workbook.errors import WorkbookError
from workbook.registry import ROOT
from workbook.servers.server import TIMEOUT, Server
from workbook.servers.trace import parse

PITFALLS = load_pitfalls()
# Pitfalls the doctor reports as warnings: the project is fine until it is run or used the wrong way.
WARNINGS = {"no-origin-header", "inmemory-layer-two-processes", "session-from-another-project", "session-deleted"}
REPRODUCED: dict[str, str] = {}


def reproduces(slug: str):
    """Mark a test as the real reproduction of one pitfall (a test checks that every pitfall has one)."""
    def mark(test):
        REPRODUCED[slug] = test.__name__
        return test
    return mark


@pytest.fixture
def variant(tmp_path):
    """Materialise a pitfall's broken project into this test's temporary directory."""
    return lambda slug: materialise(slug, tmp_path)


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """Serve a pitfall's broken project, a step, or a project directory once per module, for tests that only read.

    `shared(slug_or_step_or_path, how)`; how "https" is the daphne CLI over TLS. A pitfall is served as `pitfall run`
    serves it (no-session-table unmigrated). A test reading the log passes `after=since(server)` to wait_for_log,
    so a line an earlier test caused cannot satisfy it.
    """
    from workbook.doctor.pitfalls import get_pitfall
    from workbook.servers.https import HttpsServer

    def make(what: str | Step | Path, how: str) -> Server:
        env = {}
        if isinstance(what, (Step, Path)):
            project = getattr(what, "path", what)
        else:
            project, env = materialise(what, tmp_path_factory.mktemp(what)), get_pitfall(what).env
        return HttpsServer(project, env=env) if how == "https" else Server(project, how=how, env=env)

    yield from reused_servers(make, key=lambda what, how: (getattr(what, "id", what), how))


def since(server) -> int:
    """Return where the server's log ends now: what a test waits for must come after it."""
    return len(server.log_text())


def doctor(*args) -> subprocess.CompletedProcess:
    return run_python("-m", "workbook", "doctor", *map(str, args))


def doctor_here(capsys, *args) -> subprocess.CompletedProcess:
    """Run `doctor ARGS` in this process, as doctor() does in a new one; the project still loads in its own."""
    import argparse

    from workbook.doctor import command

    parser = argparse.ArgumentParser(prog="python -m workbook")
    command.add_commands(parser.add_subparsers())
    parsed = parser.parse_args(["doctor", *map(str, args)])
    capsys.readouterr()
    code = parsed.func(parsed)
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess(parsed.targets, code, out, err)


def slugs(findings) -> set[str]:
    return {f.slug for f in findings}


def step5():
    return get_step(5)


# --- the registry and its patches -----------------------------------------------------------------------
def test_every_pitfall_has_a_real_reproduction():
    """Each pitfall in pitfalls.toml is reproduced by a test in this module."""
    assert {p.slug for p in PITFALLS} == set(REPRODUCED)


def test_pitfalls_holds_the_registry_and_one_patch_per_broken_variant_only():
    """pitfalls/ has pitfalls.toml and <slug>.patch files of known pitfalls: no whole-file copies, no strays."""
    present = {path.name for path in (ROOT / "pitfalls").iterdir() if path.name != "__pycache__"}
    patched = {p.patch.name for p in PITFALLS if p.patch.exists()}
    assert present == {"pitfalls.toml"} | patched
    assert len(patched) >= 12


@pytest.mark.parametrize("pitfall", PITFALLS, ids=lambda p: p.slug)
def test_each_patch_applies_cleanly_and_changes_only_its_files(pitfall, variant):
    """The variant differs from its step in exactly the files its patch names; the rest is byte-identical."""
    project = variant(pitfall.slug)
    assert changed_files(pitfall.base, project) == pitfall.overlay_files()
    assert all(file_diff.status == "changed" for file_diff in diff(pitfall.base, project))
    assert pitfall.symptom and pitfall.cause and pitfall.fix and pitfall.trigger


@pytest.mark.parametrize("pitfall", [p for p in PITFALLS if p.patch.exists()], ids=lambda p: p.slug)
def test_each_patch_is_a_small_unified_diff_against_its_step(pitfall):
    """A patch names files as a/ and b/ paths, keeps 1-3 lines of context, and adds plus removes at most 12 lines."""
    text = pitfall.patch.read_text(encoding="utf-8")
    headers = re.findall(r"^--- a/(\S+)\n\+\+\+ b/(\S+)$", text, flags=re.M)
    assert headers and all(old == new for old, new in headers) and len(headers) == len(pitfall.overlay_files())
    body = [line for line in text.splitlines() if not line.startswith(("--- a/", "+++ b/"))]
    assert len([line for line in body if line[:1] in "+-"]) <= 12
    for hunk in re.split(r"^@@ .*@@$", "\n".join(body), flags=re.M)[1:]:
        kinds = "".join(line[:1] or " " for line in hunk.strip("\n").splitlines())
        lead, trail = len(kinds) - len(kinds.lstrip(" ")), len(kinds) - len(kinds.rstrip(" "))
        assert 1 <= min(lead, trail) and max(lead, trail) <= 3, hunk


def test_a_patch_whose_context_no_longer_matches_its_step_is_refused_in_one_line(tmp_path, monkeypatch):
    """When the step drifts from a patch, materialise names pitfall, file and hunk in one line and writes nothing."""
    import workbook.doctor.pitfalls as pitfalls

    drifted = tmp_path / "pitfalls"
    drifted.mkdir()
    text = (ROOT / "pitfalls" / "no-as-asgi.patch").read_text(encoding="utf-8")
    (drifted / "no-as-asgi.patch").write_text(text.replace(" from . import consumers\n", " from . import views\n"))
    monkeypatch.setattr(pitfalls, "PITFALLS_DIR", drifted)
    with pytest.raises(WorkbookError) as refused:
        materialise("no-as-asgi", tmp_path / "out")
    assert str(refused.value).splitlines() == [
        "pitfall no-as-asgi: chat/routing.py of steps/05-js-client: hunk 1 (@@ -3,5 +3,5 @@) no longer matches "
        "(line 3 reads 'from . import consumers', the patch expects 'from . import views'): "
        f"update {drifted / 'no-as-asgi.patch'} to match the step"
    ]
    assert not (tmp_path / "out").exists()


def test_a_hunk_applies_where_its_context_moved_and_keeps_windows_line_endings():
    """Lines added above a hunk only shift it; a CRLF checkout stays CRLF."""
    from workbook import patches

    routing = (step5().path / "chat" / "routing.py").read_text(encoding="utf-8")
    hunks = patches.parse((ROOT / "pitfalls" / "no-as-asgi.patch").read_text(encoding="utf-8"), "no-as-asgi.patch")
    moved = ("# moved down two lines\n\n" + routing).replace("\n", "\r\n")
    expected = moved.replace("ChatConsumer.as_asgi())", "ChatConsumer)")
    assert patches.apply(moved, hunks["chat/routing.py"], "routing.py", "update it") == expected


def test_a_malformed_patch_is_refused_with_the_line_that_is_wrong():
    """A hunk with a line too many for its header gets one line naming the patch and the line."""
    from workbook import patches

    broken = "--- a/x.py\n+++ b/x.py\n@@ -1,1 +1,1 @@\n-old\n+new\n+one too many\n"
    with pytest.raises(WorkbookError, match=r"^x\.patch: line 6 is not part of a unified diff \('\+one too many'\)$"):
        patches.parse(broken, "x.patch")


# --- the doctor on project directories ------------------------------------------------------------------
@pytest.mark.parametrize("pitfall", PITFALLS, ids=lambda p: p.slug)
def test_the_doctor_names_each_pitfall_in_its_project(pitfall, variant, capsys):
    """`doctor PATH` names the pitfall as a problem (exit 1) or a warning (exit 0), with its catalogue fix."""
    project = variant(pitfall.slug)
    with socket.socket() as busy:
        args = [project]
        if pitfall.slug == "port-in-use":
            busy.bind(("127.0.0.1", 0))
            busy.listen()
            args += ["--port", busy.getsockname()[1]]
        if pitfall.slug == "no-session-table":
            (project / "db.sqlite3").touch()  # as `manage.py runserver` leaves it: there, but without tables
        result = doctor_here(capsys, *args)
    kind = "warning" if pitfall.slug in WARNINGS else "problem"
    assert f"{kind} [{pitfall.slug}]" in result.stdout, result.stdout + result.stderr
    assert f"fix: {pitfall.fix} (docs/troubleshooting.md#{pitfall.slug})" in result.stdout, result.stdout
    assert result.returncode == (0 if pitfall.slug in WARNINGS else 1), result.stdout


CLEAN = [*steps()] + ([pytest.param(ROOT / "final", id="final")] if (ROOT / "final" / "manage.py").exists() else [])


@pytest.mark.parametrize("project", CLEAN)
def test_every_clean_project_gets_a_clean_bill_of_health(project, capsys):
    """The doctor finds no problem in any step, nor in final/, and exits 0."""
    result = doctor_here(capsys, getattr(project, "path", project))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "problem [" not in result.stdout
    assert "=> healthy" in result.stdout


def test_the_doctor_falls_back_to_the_text_when_the_project_does_not_load(variant, capsys):
    """A project whose settings crash is still checked: the crash and the text-level pitfalls are named."""
    project = variant("no-daphne-app")
    settings = project / "mychannels" / "settings.py"
    settings.write_text(settings.read_text() + "\nimport a_package_nobody_installed  # noqa\n")
    result = doctor_here(capsys, project)
    assert result.returncode == 1
    assert "[project-does-not-load]" in result.stdout and "a_package_nobody_installed" in result.stdout
    assert "[no-daphne-app] INSTALLED_APPS has no 'daphne' (read from settings.py)" in result.stdout


def test_the_doctor_says_what_to_do_with_a_directory_that_is_not_a_project(tmp_path):
    """A directory without manage.py gets one line saying where to point the doctor."""
    result = doctor(tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"workbook: {tmp_path} has no manage.py: point the doctor at the directory that holds manage.py"
    ]


# --- each pitfall for real: a real server, a real client ------------------------------------------------
@reproduces("no-daphne-app")
async def test_without_daphne_runserver_is_wsgi_and_answers_404(shared):
    """runserver prints Django's plain banner and answers the websocket handshake with 404."""
    server = shared("no-daphne-app")
    start = since(server)
    assert await client.handshake_status(server.ws_url(), quiet=True) == 404
    log = server.wait_for_log(r'"GET /ws/chat/ HTTP/1.1" 404', after=start).string
    assert f"Starting development server at {server.http_url}" in log and "Not Found: /ws/chat/" in log
    assert "ASGI/Daphne" not in log
    assert slugs(await probe(server.ws_url())) == {"no-daphne-app"}


@reproduces("daphne-after-staticfiles")
def test_daphne_after_staticfiles_fails_the_system_check(variant, serve):
    """runserver refuses to start, naming daphne.E001."""
    with pytest.raises(WorkbookError) as refused:
        serve(variant("daphne-after-staticfiles"))
    assert "(daphne.E001) Daphne must be listed before django.contrib.staticfiles in INSTALLED_APPS." in str(
        refused.value)


@reproduces("no-websocket-route")
async def test_a_router_without_websocket_answers_500(variant, serve):
    """The handshake gets HTTP 500 and the log names the missing scope type."""
    server = serve(variant("no-websocket-route"))
    assert await client.handshake_status(server.ws_url(), quiet=True) == 500
    server.wait_for_log(r"ValueError: No application configured for scope type 'websocket'")
    [finding] = await probe(server.ws_url())
    assert finding.slug == "handshake-500" and "[no-websocket-route]" in finding.what


@reproduces("no-as-asgi")
async def test_a_route_without_as_asgi_answers_500(variant, serve):
    """Routing to the consumer class gets HTTP 500 and a TypeError in the log."""
    server = serve(variant("no-as-asgi"), how="daphne")
    assert await client.handshake_status(server.ws_url(), quiet=True) == 500
    server.wait_for_log(r"TypeError: object ChatConsumer can't be used in 'await' expression")
    [finding] = await probe(server.ws_url())
    assert finding.slug == "handshake-500" and "[no-as-asgi]" in finding.what


@reproduces("path-mismatch")
async def test_the_pages_path_finds_no_route_and_gets_500(shared):
    """The page's /ws/chat (no slash) is not routed: HTTP 500, not 404, and "No route found" in the log."""
    server = shared("path-mismatch")
    assert "location.host + '/ws/chat');" in (server.project / "templates" / "index.html").read_text()
    start = since(server)
    assert await client.handshake_status(server.ws_url("/ws/chat"), quiet=True) == 500
    server.wait_for_log(r"ValueError: No route found for path 'ws/chat'\.", after=start)
    [finding] = await probe(server.ws_url("/ws/chat"))
    assert finding.slug == "handshake-500" and "[path-mismatch]" in finding.what


@reproduces("routing-before-setup")
async def test_routing_before_setup_runs_under_runserver_but_not_the_daphne_cli(variant, serve):
    """runserver sets Django up first and echoes; the daphne CLI imports asgi.py first and dies."""
    project = variant("routing-before-setup")
    server = serve(project)
    assert await client.echo(server.ws_url(), "hi", origin=server.http_url.rstrip("/"), quiet=True) == {
        "message": "hi"}
    server.stop()
    with pytest.raises(WorkbookError, match=r"AppRegistryNotReady: Apps aren't loaded yet\."):
        serve(project, how="daphne")


@reproduces("origin-not-allowed")
async def test_the_origin_validator_refuses_an_origin_outside_allowed_hosts(variant, serve):
    """A page from http://127.0.0.1:8888 gets 403 when ALLOWED_HOSTS is ['localhost']; localhost passes."""
    server = serve(variant("origin-not-allowed"))
    assert await client.handshake_status(server.ws_url(), origin="http://127.0.0.1:8888", quiet=True) == 403
    assert await client.handshake_status(server.ws_url(), origin="http://localhost:8888", quiet=True) == 101
    server.wait_for_log(r"WebSocket REJECT /ws/chat/")
    assert slugs(await probe(server.ws_url())) == {"origin-not-allowed"}


@reproduces("no-origin-header")
async def test_a_client_without_origin_is_refused_with_403(variant, serve):
    """With the validator, no Origin means 403; the same client with an Origin gets in."""
    server = serve(variant("no-origin-header"), how="daphne")
    with pytest.raises(InvalidStatus, match="server rejected WebSocket connection: HTTP 403"):
        await client.open_socket(server.ws_url(), quiet=True)
    origin = server.http_url.rstrip("/")
    assert await client.echo(server.ws_url(), "hi", origin=origin, quiet=True) == {"message": "hi"}
    server.wait_for_log(r'"WSREJECT /ws/chat/"')
    findings = await probe(server.ws_url())
    assert slugs(findings) == {"no-origin-header"} and not any(f.problem for f in findings)


@reproduces("never-accepts")
async def test_a_consumer_that_never_accepts_leaves_the_client_hanging(shared):
    """The handshake gets no answer; daphne drops it after its 5 s timeout and the consumer sees 1006."""
    server = shared("never-accepts")
    start = since(server)

    async def plain_client():
        with pytest.raises(InvalidMessage, match="did not receive a valid HTTP response"):
            await client.open_socket(server.ws_url(), origin=server.http_url.rstrip("/"), quiet=True)

    found, _ = await asyncio.gather(probe(server.ws_url()), plain_client())
    log = server.wait_for_log(r"a client disconnected, close code 1006", after=start).string
    assert "WebSocket DISCONNECT /ws/chat/" in log[start:] and "WebSocket CONNECT /ws/chat/" not in log
    assert slugs(found) == {"never-accepts"}


@reproduces("plain-text-frame")
async def test_a_plain_text_frame_closes_the_socket_with_1011(shared):
    """What the broken page sends, plain text, makes the consumer raise: close code 1011."""
    server = shared("plain-text-frame")
    assert "chatSocket.send(message);" in (server.project / "templates" / "index.html").read_text()
    start = since(server)
    async with await client.open_socket(server.ws_url(), origin=server.http_url.rstrip("/"), quiet=True) as ws:
        await client.send_text(ws, "hello", quiet=True)
        assert await client.wait_closed(ws, quiet=True) == 1011
    server.wait_for_log(r"json\.decoder\.JSONDecodeError: Expecting value: line 1 column 1 \(char 0\)", after=start)
    assert "plain-text-frame" in slugs(await probe(server.ws_url(), frames=True))


@reproduces("missing-message-key")
async def test_json_without_message_closes_the_socket_with_1011(shared):
    """What the broken page sends, {"text": …}, makes the consumer raise KeyError: close code 1011."""
    server = shared("missing-message-key")
    assert "JSON.stringify({ text: message })" in (server.project / "templates" / "index.html").read_text()
    start = since(server)
    async with await client.open_socket(server.ws_url(), origin=server.http_url.rstrip("/"), quiet=True) as ws:
        await client.send_json(ws, {"text": "hello"}, quiet=True)
        assert await client.wait_closed(ws, quiet=True) == 1011
    server.wait_for_log(r"KeyError: 'message'", after=start)
    assert "missing-message-key" in slugs(await probe(server.ws_url(), frames=True))


@reproduces("port-in-use")
def test_a_second_server_on_a_busy_port_does_not_start(shared, serve, capsys):
    """The workbook, daphne's runserver and the daphne CLI each say the port is taken."""
    first = shared(step5())
    with pytest.raises(WorkbookError, match=rf"port {first.port} is busy \(.* is still running there\): stop it"):
        serve(step5(), port=first.port)
    netloc = f"127.0.0.1:{first.port}"
    runserver = run_python("manage.py", "runserver", netloc, "--noreload", cwd=step5().path)
    # Errno 98 on Linux, 48 on macOS.
    busy = rf"Listen failure: Couldn't listen on {netloc}: \[Errno \d+\] Address already in use\."
    assert re.search(busy, runserver.stderr), runserver.stderr
    daphne = run_python("-m", "daphne", "-b", "127.0.0.1", "-p", str(first.port), "mychannels.asgi:application",
                        cwd=step5().path)
    assert daphne.returncode == 1
    assert re.search(busy, daphne.stderr), daphne.stderr
    result = doctor_here(capsys, step5().path, "--port", first.port)
    assert result.returncode == 1 and f"[port-in-use] port {first.port} is in use by 05-js-client" in result.stdout


@reproduces("no-session-table")
@pytest.mark.parametrize("how", ["runserver", "daphne"])
async def test_a_stale_sessionid_cookie_gets_500_from_a_database_that_was_never_migrated(how, shared):
    """Unmigrated: a handshake gets in, with a sessionid cookie it gets 500 (no such table); only runserver warns."""
    from workbook.doctor.probe import STALE_COOKIE

    server = shared("no-session-table", how)
    start = since(server)
    origin = server.http_url.rstrip("/")
    assert await client.handshake_status(server.ws_url(), origin=origin, quiet=True) == 101
    with pytest.raises(InvalidStatus, match=r"^server rejected WebSocket connection: HTTP 500$"):
        await connect(server.ws_url(), additional_headers={"Origin": origin, "Cookie": STALE_COOKIE},
                      open_timeout=TIMEOUT)
    log = server.wait_for_log(r"django\.db\.utils\.OperationalError: no such table: django_session",
                              after=start).string
    assert "Exception inside application: no such table: django_session" in log[start:]
    assert bool(re.search(r"^You have \d+ unapplied migration\(s\)\. Your project may not work properly until you "
                          r"apply the migrations for app\(s\): admin, auth, contenttypes, sessions\.$", log, re.M)) == (
        how == "runserver")
    assert slugs(await probe(server.ws_url())) == {"no-session-table"}


# Once, under runserver: migrating is the database's business, not the server's (both run daphne's same Server).
async def test_the_same_stale_cookie_gets_in_once_the_database_is_migrated(variant, serve):
    """The no-session-table project, migrated as `make step-N run` does: the handshake with the cookie echoes."""
    from workbook.doctor.probe import STALE_COOKIE

    migrated = serve(variant("no-session-table"))
    with_cookie = {"Origin": migrated.http_url.rstrip("/"), "Cookie": STALE_COOKIE}
    async with connect(migrated.ws_url(), additional_headers=with_cookie, open_timeout=TIMEOUT) as ws:
        await client.send_json(ws, {"message": "hi"}, quiet=True)
        assert await client.receive(ws, quiet=True) == {"message": "hi"}
    assert slugs(await probe(migrated.ws_url())) == set()


async def _lobby_across(one, two) -> tuple[object, object, object]:
    """Connect two clients to `one` and one to `two`, send from the first; return what each got (None: nothing)."""
    origin = one.http_url.rstrip("/")
    async with (
        await client.open_socket(one.ws_url(), origin=origin, quiet=True) as sender,
        await client.open_socket(one.ws_url(), origin=origin, quiet=True) as neighbour,
        await client.open_socket(two.ws_url(), origin=origin, quiet=True) as elsewhere,
    ):
        await client.send_json(sender, {"message": "anyone there?"}, quiet=True)
        got = [await client.receive(sender, quiet=True), await client.receive(neighbour, quiet=True)]
        # The layer had queued the message for every member before the sender got it back: had it reached
        # `elsewhere`, it would come before the reply to elsewhere's own message.
        await client.send_json(elsewhere, {"message": "only me?"}, quiet=True)
        first = await client.receive(elsewhere, quiet=True)
        got.append(None if first == {"message": "only me?"} else first)
    return tuple(got)


@reproduces("inmemory-layer-two-processes")
async def test_the_in_memory_layer_loses_messages_between_two_processes(variant, serve):
    """Step 6 as two processes: a group message reaches the sender's process only, and nothing says so."""
    project = variant("inmemory-layer-two-processes")
    sent = {"message": "anyone there?"}
    assert await _lobby_across(serve(project), serve(project)) == (sent, sent, None)


@pytest.mark.redis
async def test_the_redis_layer_carries_the_message_to_the_other_process(serve, monkeypatch, capsys):
    """The fix, step 7 with REDIS_URL: the client on the other process gets the message too."""
    from workbook.servers.redis import GET_REDIS, RedisServer, binary

    need(binary() is not None, "redis-server", GET_REDIS)
    with RedisServer() as redis:
        env = {"REDIS_URL": redis.url}
        step7 = get_step(7)
        sent = {"message": "anyone there?"}
        assert await _lobby_across(serve(step7, env=env), serve(step7, env=env)) == (sent, sent, sent)
        monkeypatch.setenv("REDIS_URL", redis.url)
        healthy = doctor_here(capsys, step7.path)
        assert healthy.returncode == 0 and "inmemory" not in healthy.stdout, healthy.stdout


def test_the_doctor_says_when_the_redis_of_the_channel_layer_does_not_answer(monkeypatch, capsys):
    """Step 7 pointed at a port where no Redis listens: the doctor names redis-unreachable and exits 1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("REDIS_URL", f"redis://127.0.0.1:{port}/0")
    result = doctor_here(capsys, get_step(7).path)
    assert result.returncode == 1
    assert f"problem [redis-unreachable] CHANNEL_LAYERS uses Redis at 127.0.0.1:{port}" in result.stdout


# --- step 8: the async consumer's two mistakes ----------------------------------------------------------------
class VerboseDaphne(Server):
    """The daphne CLI at -v 2, the only verbosity at which daphne prints Python's warnings."""

    def command(self) -> list[str]:
        cmd = super().command()
        return [*cmd[:3], "-v", "2", *cmd[3:]]


async def _unheard(server) -> None:
    """Send a message on an open socket and hear nothing back, though the socket stays open."""
    async with await client.open_socket(server.ws_url("/ws/chat/kitchen/"), quiet=True) as ws:
        await client.send_json(ws, {"message": "anyone?"}, quiet=True)
        with pytest.raises((TimeoutError, asyncio.TimeoutError)):
            await client.receive(ws, timeout=2, quiet=True)
        await asyncio.wait_for(await ws.ping(), TIMEOUT)


@reproduces("forgot-await")
async def test_a_group_call_without_await_sends_nothing_and_only_daphne_at_v2_says_why(variant, serve):
    """Nobody hears the message; runserver's log is silent, the trace shows no send, daphne -v 2 prints the warning."""
    project = variant("forgot-await")
    quiet = serve(project, trace=True)
    verbose = VerboseDaphne(project, how="daphne")
    try:
        verbose.start()
        STARTED_GROUPS.append(verbose.pid)
        # Each server's bounded wait for nothing runs at the same time as the other's.
        await asyncio.gather(_unheard(quiet), _unheard(verbose))
        events = [(e.direction, e.type) for e in parse(quiet.wait_for_log(r"websocket\.disconnect").string)]
        assert ("received", "websocket.receive") in events and ("sent", "websocket.send") not in events
        assert "never awaited" not in quiet.log_text()
        verbose.wait_for_log(
            r"builtins\.RuntimeWarning: coroutine 'InMemoryChannelLayer\.group_send' was never awaited")
    finally:
        verbose.stop()


async def _ping_while_another_handler_runs(server) -> tuple[float, float, dict]:
    """Return B's ping round trip when idle and while A's message is handled, and what A got back."""
    async with await client.open_socket(server.ws_url("/ws/chat/a/"), quiet=True) as a, \
            await client.open_socket(server.ws_url("/ws/chat/b/"), quiet=True) as b:
        started = time.monotonic()
        await asyncio.wait_for(await b.ping(), TIMEOUT)
        idle = time.monotonic() - started
        await client.send_json(a, {"message": "slow one"}, quiet=True)
        await asyncio.sleep(0.2)  # let A's handler start its two-second call
        started = time.monotonic()
        await asyncio.wait_for(await b.ping(), TIMEOUT)
        busy = time.monotonic() - started
        return idle, busy, await client.receive(a, timeout=TIMEOUT, quiet=True)


@reproduces("blocking-sleep")
async def test_a_blocking_sleep_in_one_handler_stalls_every_other_connection(variant, serve, tmp_path):
    """While A's handler runs time.sleep(2), B's ping waits for it; with await asyncio.sleep(2) it does not."""
    blocking = variant("blocking-sleep")
    fixed = materialise("blocking-sleep", tmp_path / "fixed")
    consumer = fixed / "chat" / "consumers.py"
    text = consumer.read_text().replace("import time\n", "import asyncio\n")
    consumer.write_text(text.replace("time.sleep(2)", "await asyncio.sleep(2)"))

    # Both at once, so the two sleeps overlap; each server is a process of its own.
    (idle, stalled, reply), (_, busy, fixed_reply) = await asyncio.gather(
        _ping_while_another_handler_runs(serve(blocking, how="daphne")),
        _ping_while_another_handler_runs(serve(fixed, how="daphne")))
    assert reply == fixed_reply == {"message": "slow one"}
    # The handler sleeps 2 s and the ping goes out 0.2 s after A's message: a stalled ping waits most of the rest.
    assert stalled > 1.2 and stalled > idle + 1.0, (idle, stalled)
    assert busy < stalled - 1.0, (idle, busy, stalled)


# --- the browser's view: what the learner sees in the page and the console ------------------------------
@contextlib.contextmanager
def _chromium(*extra: str):
    """The suite's headless Chromium (workbook.browser.launch), or need() with its install hint."""
    from workbook.browser import BrowserMissing, launch

    try:
        with launch(*extra) as browser:
            yield browser
    except BrowserMissing as missing:
        need(False, "Chromium", str(missing))


@contextlib.contextmanager
def fresh_profile(chromium):
    """A context of the worker's shared Chromium: its own cookies, storage and cache, like a browser just started."""
    context = chromium.new_context()
    try:
        yield context
    finally:
        context.close()


def _watch(page) -> list[str]:
    seen: list[str] = []
    page.on("console", lambda message: seen.append(message.text))
    page.on("pageerror", lambda error: seen.append(str(error)))
    return seen


def _wait_seen(page, seen: list[str], text: str) -> None:
    """Poll the console messages (with the one deadline) until one contains `text`."""
    deadline = time.monotonic() + TIMEOUT
    while not any(text in line for line in seen):
        assert time.monotonic() < deadline, f"the browser never said {text!r}: {seen}"
        page.wait_for_timeout(50)


@pytest.mark.browser
@pytest.mark.parametrize("slug, sent, closed_with, console", [
    ("plain-text-frame", "hello", 1011, None),
    ("missing-message-key", "hello", 1011, None),
    ("path-mismatch", None, 1006, r"WebSocket connection to 'ws://[\d.:]+/ws/chat' failed: "
                                  r"Error during WebSocket handshake: Unexpected response code: 500"),
    ("no-daphne-app", None, 1006, r"WebSocket connection to 'ws://[\d.:]+/ws/chat/' failed: "
                                  r"Error during WebSocket handshake: Unexpected response code: 404"),
    ("never-accepts", None, 1006, r"WebSocket connection to 'ws://[\d.:]+/ws/chat/' failed: "
                                  r"Error during WebSocket handshake: net::ERR_CONNECTION_RESET"),
])
def test_the_broken_pages_show_the_failure_in_the_browser(slug, sent, closed_with, console, shared, chromium):
    """The broken project's page, in Chromium, ends with the close code and console error the docs quote."""
    server = shared(slug)
    with fresh_profile(chromium) as context:
        page = context.new_page()
        seen = _watch(page)
        page.goto(server.http_url)
        if sent:
            page.wait_for_selector('#state[data-state="open"]')
            page.fill("#message-input", sent)
            page.click("#send-button")
        page.wait_for_selector('#state[data-state="closed"]')
        assert f"socket closed with code {closed_with}" in page.locator("#log li.closed").inner_text()
        if console:
            _wait_seen(page, seen, "WebSocket connection to")
    assert not console or any(re.fullmatch(console, text) for text in seen), seen


@pytest.mark.browser
def test_a_browser_holding_a_stale_sessionid_cookie_gets_500_from_an_unmigrated_step(shared, chromium):
    """Chromium with a sessionid cookie for the host loads step 4's page, but its socket gets HTTP 500."""
    from workbook.doctor.probe import STALE_COOKIE

    server = shared("no-session-table")
    start = since(server)
    with fresh_profile(chromium) as context:
        name, _, value = STALE_COOKIE.partition("=")
        context.add_cookies([{"name": name, "value": value, "url": server.http_url}])
        page = context.new_page()
        seen = _watch(page)
        page.goto(server.http_url)
        page.evaluate("new WebSocket('ws://' + location.host + '/ws/chat/')")
        _wait_seen(page, seen, "WebSocket connection to")
    console = r"WebSocket connection to 'ws://[\d.:]+/ws/chat/' failed: Error during WebSocket handshake: " \
              r"Unexpected response code: 500"
    assert any(re.fullmatch(console, text) for text in seen), seen
    server.wait_for_log(r"no such table: django_session", after=start)


def _open_over_https(browser, server, wait_for: str) -> tuple[list[str], str]:
    """Open the page of `server` (over https) as chat.test in a new context; return (console, socket state)."""
    public, real = f"https://chat.test:{server.port}", server.http_url.rstrip("/")
    context = browser.new_context(ignore_https_errors=True)
    page = context.new_page()
    seen = _watch(page)
    # Django's ALLOWED_HOSTS knows 127.0.0.1, not chat.test: fetch the page from the real address.
    page.route(f"{public}/**", lambda route: route.fulfill(
        response=route.fetch(url=route.request.url.replace(public, real))))
    page.goto(public + "/")
    if wait_for == "open":
        page.wait_for_selector('#state[data-state="open"]')
    else:
        _wait_seen(page, seen, wait_for)
    state = page.locator("#state").get_attribute("data-state")
    context.close()
    return seen, state


@reproduces("mixed-content")
@pytest.mark.browser
def test_an_https_page_cannot_open_ws_but_the_fixed_page_opens_wss(shared):
    """Over https, Chromium blocks the broken page's ws:// as mixed content; step 5's page picks wss:// and opens."""
    # 127.0.0.1 and localhost count as secure to a browser, so the site gets a public-looking name.
    rules = ["--host-resolver-rules=MAP chat.test 127.0.0.1", "--disable-features=LocalNetworkAccessChecks"]
    with _chromium(*rules) as browser:
        seen, state = _open_over_https(browser, shared("mixed-content", "https"), "Failed to construct 'WebSocket'")
        fixed = _open_over_https(browser, shared(step5(), "https"), "open")[1]
    assert any(text.startswith("Mixed Content: The page at 'https://chat.test:") and "This request has been blocked; "
               "this endpoint must be available over WSS." in text for text in seen), seen
    assert any("Failed to construct 'WebSocket': An insecure WebSocket connection may not be initiated from a page "
               "loaded over HTTPS." in text for text in seen), seen
    assert state == "connecting"
    assert fixed == "open"


async def test_the_probe_sees_through_a_self_signed_wss_server(shared):
    """`doctor wss://…` on step 5 over TLS notes the untrusted certificate, then finds it healthy."""
    findings = await probe(shared(step5(), "https").ws_url())
    assert slugs(findings) == {"tls-untrusted"} and not any(f.problem for f in findings)


# --- the command line ------------------------------------------------------------------------------------
def test_the_probe_of_a_port_nobody_listens_on_says_to_start_the_server():
    """`doctor ws://…` on a dead port exits 1 and says to start the server."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = doctor(f"ws://127.0.0.1:{port}/ws/chat/")
    assert result.returncode == 1 and f"[not-listening] nothing listens on 127.0.0.1:{port}" in result.stdout


async def test_the_probe_of_a_healthy_step_exits_0(shared):
    """`doctor ws://…` on step 5 sees 101 with and without Origin, gets the echo back, and exits 0."""
    server = shared(step5())
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "workbook", "doctor", server.ws_url(), stdout=asyncio.subprocess.PIPE, cwd=ROOT)
    out, _ = await process.communicate()
    assert process.returncode == 0, out.decode()
    assert "=> healthy" in out.decode()


def test_pitfall_show_prints_the_symptom_and_the_diff():
    """`pitfall show` prints symptom, cause, fix and the pitfall's patch against the step."""
    result = run_python("-m", "workbook", "pitfall", "show", "no-as-asgi")
    assert result.returncode == 0
    assert (ROOT / "pitfalls" / "no-as-asgi.patch").read_text(encoding="utf-8") in result.stdout
    assert "pitfalls/no-as-asgi.patch, against steps/05-js-client/:\n--- a/chat/routing.py\n" in result.stdout
    assert "TypeError: object ChatConsumer can't be used in 'await' expression" in result.stdout
    assert "-    re_path(r'ws/chat/$', consumers.ChatConsumer.as_asgi())," in result.stdout
    assert "+    re_path(r'ws/chat/$', consumers.ChatConsumer)," in result.stdout


# --- the notebook ----------------------------------------------------------------------------------------
NOTEBOOK = ROOT / "notebooks" / "pitfalls.ipynb"


def test_the_pitfalls_notebook_is_committed_without_outputs():
    """No code cell of notebooks/pitfalls.ipynb carries outputs or an execution count."""
    # The file's JSON as committed (nbformat 4), read without nbformat, whose import alone takes over a second.
    code = [c for c in json.loads(NOTEBOOK.read_text(encoding="utf-8"))["cells"] if c["cell_type"] == "code"]
    assert code and not [c for c in code if c.get("outputs") or c.get("execution_count") is not None]
    assert not [c for c in code if "asyncio.run(" in "".join(c["source"])]


@pytest.mark.notebook
async def test_the_pitfalls_notebook_runs_headless_and_stops_its_servers(tmp_path):
    """Every cell runs on a real kernel, shows each symptom and diagnosis it promises, and frees every port."""
    pytest.importorskip("nbclient")
    from workbook.notebooks import jupyter
    from workbook.servers.server import port_is_free

    record = tmp_path / "servers.jsonl"
    client = jupyter.notebook_client(NOTEBOOK)
    async with client.async_setup_kernel(env=jupyter.kernel_env(WORKBOOK_SERVER_RECORD=str(record))):
        for index, cell in enumerate(client.nb.cells):
            await client.async_execute_cell(cell, index)
        servers = [__import__("json").loads(line) for line in record.read_text().splitlines()]
        STARTED_GROUPS.extend(server["pid"] for server in servers)
        # The notebook's last cell stopped them, while the kernel still runs.
        assert servers and all(port_is_free(server["port"]) for server in servers)
    text = "\n".join(
        out.get("text", "") + out.get("data", {}).get("text/plain", "") + out.get("data", {}).get("text/markdown", "")
        for cell in client.nb.cells for out in cell.get("outputs", [])
    )
    missing = [shown for shown in client.nb.metadata["workbook"]["shows"] if shown not in text]
    assert not missing, f"the notebook never showed {missing}"


# --- more of the doctor ------------------------------------------------------------------------------------
async def test_a_consumer_that_closes_in_connect_is_refused_with_403_and_probed_as_such(variant, serve):
    """close() in connect() answers HTTP 403 whatever the Origin; the probe says so, unlike a hang."""
    project = variant("never-accepts")
    consumers = project / "chat" / "consumers.py"
    consumers.write_text(consumers.read_text().replace("        pprint(self.scope)\n",
                                                       "        pprint(self.scope)\n        self.close()\n"))
    server = serve(project)
    assert await client.handshake_status(server.ws_url(), origin=server.http_url.rstrip("/"), quiet=True) == 403
    assert slugs(await probe(server.ws_url())) == {"handshake-403"}


def test_the_doctor_runs_the_project_with_the_python_it_is_given(variant, capsys):
    """--python picks the interpreter; one without Channels makes the doctor fall back to reading the text."""
    import shutil

    bare = shutil.which("python3", path="/usr/bin:/usr/local/bin")
    has_channels = bare and subprocess.run([bare, "-c", "import channels"], capture_output=True).returncode == 0
    if not bare or has_channels:
        pytest.skip("needs a python3 without Channels in /usr/bin (Debian's own python3)")
    result = doctor_here(capsys, variant("no-as-asgi"), "--python", bare)
    assert result.returncode == 1
    assert "[project-does-not-load] the project does not load: ModuleNotFoundError: No module named" in result.stdout
    assert "[no-as-asgi] chat/routing.py: re_path(r'ws/chat/$', consumers.ChatConsumer)," in result.stdout
    assert result.stdout.count("problem [") == 2, result.stdout


# --- the troubleshooting page --------------------------------------------------------------------------------
DOC = (ROOT / "docs" / "troubleshooting.md").read_text(encoding="utf-8")


def _anchors() -> set[str]:
    return set(re.findall(r'<a id="([\w-]+)"></a>', DOC))


@pytest.mark.parametrize("pitfall", PITFALLS, ids=lambda p: p.slug)
def test_the_troubleshooting_page_quotes_each_pitfalls_messages_verbatim(pitfall):
    """Each pitfall has its entry, which quotes the lines the learner sees and links its patch."""
    assert pitfall.slug in _anchors()
    entry = DOC.split(f'<a id="{pitfall.slug}"></a>')[1].split('<a id="')[0]
    for line in pitfall.symptom.splitlines():
        if not line.startswith(("(", " ")):
            assert line in entry, line
    assert "python -m workbook doctor" in entry and f"pitfall show {pitfall.slug}" in entry
    if pitfall.overlay_files():
        assert f"(../pitfalls/{pitfall.slug}.patch)" in entry


def test_every_finding_the_doctor_can_name_has_an_entry_and_every_link_lands():
    """Each slug the doctor prints links to an anchor on the page; each link on the page has its anchor."""
    sources = "".join(path.read_text() for path in DOCTOR_MODULES)
    named = set(re.findall(r'Finding\(\s*"([\w-]+)"', sources))
    assert len(named) >= 10, f"only {len(named)} findings found: did the doctor move?"
    named |= {"plain-text-frame", "missing-message-key"}
    assert named <= _anchors(), named - _anchors()
    assert set(re.findall(r"\]\(#([\w-]+)\)", DOC)) <= _anchors()
    for target in re.findall(r"\]\((\.\./[^)#]+)\)", DOC):
        assert (ROOT / "docs" / target).exists(), target


# --- step 9: who the scope says the user is ----------------------------------------------------------------
@pytest.fixture(scope="module")
def with_users(tmp_path_factory):
    """Return a pitfall's broken step-9 project, migrated and with the demo users, made once per module."""
    made: dict[str, tuple] = {}

    def get(slug: str) -> tuple:
        if slug not in made:
            project = materialise(slug, tmp_path_factory.mktemp(slug))
            made[slug] = project, _step9_users(project)
        return made[slug]

    return get


def _step9_users(project) -> dict[str, str]:
    """Create the demo users in `project`'s database (migrating it first), as `make step-9 users` does."""
    from workbook.users import create_demo_users

    create_demo_users(project)
    return {"alice": "alice-password", "bob": "bob-password"}


def _with_session(server, session: str) -> dict[str, str]:
    return {"Origin": server.http_url.rstrip("/"), "Cookie": f"sessionid={session}"}


@pytest.fixture(scope="module")
def alice_elsewhere(with_users, shared):
    """Serve no-auth-middleware's step-9 copy (daphne CLI) once, log alice in over HTTP; return (server, sessionid)."""
    from workbook.login import login

    project, passwords = with_users("no-auth-middleware")
    server = shared(project, "daphne")
    return server, login(server.http_url, "alice", passwords["alice"])


# Under the daphne CLI only: the KeyError is the consumer's, in daphne's same Server under runserver too. The daphne
# CLI imports the variant's asgi.py before Django is set up, the stricter of the two ways to load it; runserver's way
# (settings, then ASGI_APPLICATION) is test_stages' 09-users checks under -runserver.
@reproduces("no-auth-middleware")
async def test_without_auth_middleware_every_handshake_gets_500_with_keyerror_user(alice_elsewhere):
    """URLRouter alone puts no user in the scope: connect raises KeyError: 'user', the handshake gets 500."""
    server, session = alice_elsewhere
    start = since(server)
    for headers in ({"Origin": server.http_url.rstrip("/")}, _with_session(server, session)):
        with pytest.raises(InvalidStatus, match=r"HTTP 500$"):
            await connect(server.ws_url(), additional_headers=headers, open_timeout=TIMEOUT)
    log = server.wait_for_log(r"KeyError: 'user'", after=start).string
    assert "Exception inside application: 'user'" in log[start:]


@reproduces("session-from-another-project")
async def test_a_session_cookie_from_another_project_is_anonymous_and_refused_with_403(alice_elsewhere, variant, serve):
    """alice's sessionid from another step-9 project names nobody in a copy with its own database: 403, "log in"."""
    import urllib.request

    _, session = alice_elsewhere
    server = serve(variant("session-from-another-project"))
    with pytest.raises(InvalidStatus, match=r"HTTP 403$"):
        await connect(server.ws_url(), additional_headers=_with_session(server, session), open_timeout=TIMEOUT)
    request = urllib.request.Request(server.http_url, headers={"Cookie": f"sessionid={session}"})
    with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
        assert 'id="login-needed"' in response.read().decode()
    assert "Traceback" not in server.log_text()
    assert slugs(await probe(server.ws_url())) == {"login-required"}


@reproduces("session-deleted")
@pytest.mark.browser
def test_a_tab_whose_session_was_deleted_keeps_its_socket_but_is_refused_after_a_reload(variant, serve, chromium):
    """In Chromium: log out in a second tab; the first still chats as alice, and after a reload is refused."""
    from workbook.browser import log_in, send_from_form, wait_received

    project = variant("session-deleted")
    passwords = _step9_users(project)
    server = serve(project)
    with fresh_profile(chromium) as context:
        first = context.new_page()
        log_in(first, server.http_url, "alice", passwords["alice"])
        first.wait_for_selector('#state[data-state="open"]')
        second = context.new_page()
        second.goto(server.http_url)
        second.click("#logout-form button")
        second.wait_for_selector("#login-needed")
        send_from_form(first, "still me?")
        assert wait_received(first, 1) == ["<<< alice: still me?"]
        first.reload()
        first.wait_for_selector('#state[data-state="closed"]')
        refused = first.locator("#log li.refused").inner_text()
        assert refused.startswith("the server refused this socket") and refused.endswith("Log in")
        assert first.locator("#login-needed a.login-link").get_attribute("href") == "/accounts/login/?next=/"


# --- step 10: the database from an async consumer -----------------------------------------------------------
# Under runserver only: the mistake is in the consumer, which both servers run in daphne's same Server; the variant
# changes consumers.py alone, and the daphne CLI's way of loading step 10 (asgi.py first) is test_stages' 10-history
# checks under -daphne.
@reproduces("sync-orm-in-async")
async def test_a_sync_orm_call_in_an_async_handler_raises_closes_with_1011_and_saves_nothing(with_users, serve):
    """Message.objects.create in receive_json raises SynchronousOnlyOperation: 1011, the room hears nothing."""
    from websockets.exceptions import ConnectionClosed

    from workbook.doctor.hints import from_traceback, hint_for
    from workbook.login import login

    project, passwords = with_users("sync-orm-in-async")
    server = serve(project)
    alice, bob = (_with_session(server, login(server.http_url, name, passwords[name])) for name in ("alice", "bob"))
    room = server.ws_url("/ws/chat/sync-orm/")
    async with connect(room, additional_headers=alice) as sender, connect(room, additional_headers=bob) as other:
        await sender.send('{"message": "saved?"}')
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(sender.recv(), TIMEOUT)
        assert closed.value.rcvd.code == 1011
        # bob's own message crashes his handler too; had alice's reached the room, it would arrive before his close.
        await other.send('{"message": "anyone there?"}')
        with pytest.raises(ConnectionClosed) as bob_closed:
            print("bob heard", await asyncio.wait_for(other.recv(), TIMEOUT))
        assert bob_closed.value.rcvd.code == 1011
    log = server.wait_for_log(r"SynchronousOnlyOperation: You cannot call this from an async context").string
    assert "Exception inside application: You cannot call this from an async context" in log
    problem = from_traceback(log, project)
    assert (problem.file, problem.line) == ("chat/consumers.py", 59)
    assert "acreate" in hint_for(problem.error)
    # The table `manage.py history` reads (test_history runs the command itself), read without starting Django.
    assert saved_messages(project, "sync-orm") == 0
