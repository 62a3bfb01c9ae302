"""`python -m workbook test` runs in parallel, grouping what shares a server; --fast leaves out the slow kinds."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
import xdist_order

from workbook.maintainer.testrun import FAST, default_workers, pytest_args
from workbook.registry import ROOT

# Prints `GROUP<TAB>group<TAB>marks<TAB>nodeid` for each collected test, after conftest.py has given the groups.
PROBE = textwrap.dedent("""
    def pytest_collection_finish(session):
        for item in session.items:
            mark = item.get_closest_marker("xdist_group")
            marks = ",".join(sorted({m.name for m in item.iter_markers()})) or "-"
            print("GROUP", mark.args[0] if mark else "-", marks, item.nodeid, sep="\\t")
""")


def collected(tmp_path, *args: str, env: dict | None = None) -> dict[str, tuple[str, set[str]]]:
    """Collect with the given arguments; return each test's xdist group ("-" when it has none) and its marks."""
    (tmp_path / "groups_probe.py").write_text(PROBE)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", "-p", "groups_probe",
         *args], cwd=ROOT, capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)]), **(env or {})},
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    rows = [line.split("\t") for line in result.stdout.splitlines() if line.startswith("GROUP\t")]
    return {nodeid: (group, set(marks.split(","))) for _, group, marks, nodeid in rows}


@pytest.fixture(scope="module")
def every(tmp_path_factory) -> dict[str, tuple[str, set[str]]]:
    """The whole suite as collected, once for the tests that read it."""
    return collected(tmp_path_factory.mktemp("every"))


def test_the_suite_runs_on_one_worker_more_than_the_cpus_grouped_by_what_it_shares():
    """With pytest-xdist installed, `workbook test` adds `-n CPUs+1 --dist loadgroup` before the given arguments."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert default_workers() == cpus + 1
    for environ in ({}, {"WORKBOOK_TEST_WORKERS": "auto"}, {"WORKBOOK_TEST_WORKERS": " "}):
        assert pytest_args(["-k", "echo"], environ=environ) == [
            "-n", str(cpus + 1), "--dist", "loadgroup", "--no-loadscope-reorder", "-k", "echo"]
    assert pytest_args([], environ={"WORKBOOK_TEST_WORKERS": "3"})[:2] == ["-n", "3"]


def test_given_workers_or_none_are_left_as_given():
    """-n N, -p no:xdist or WORKBOOK_TEST_WORKERS=0 decide alone: nothing is added."""
    assert pytest_args(["-n", "0", "tests/test_runner.py"], environ={}) == ["-n", "0", "tests/test_runner.py"]
    assert pytest_args(["-p", "no:xdist"], environ={}) == ["-p", "no:xdist"]
    assert pytest_args(["-x"], environ={"WORKBOOK_TEST_WORKERS": "0"}) == ["-x"]


def test_fast_leaves_out_notebooks_browser_redis_and_other_pythons_and_narrows_a_given_mark():
    """--fast becomes one -m expression; a -m given with it is and-ed in, not replaced."""
    assert pytest_args(["--fast"], environ={"WORKBOOK_TEST_WORKERS": "0"}) == ["-m", FAST]
    assert pytest_args(["--fast", "-m", "not slow", "-x"], environ={"WORKBOOK_TEST_WORKERS": "0"}) == [
        "-m", f"({FAST}) and (not slow)", "-x"]
    for kind in ("notebook", "browser", "redis", "debian", "pythons"):
        assert f"not {kind}" in FAST


@pytest.mark.xdist_group("collects-the-suite")  # one worker, so the suite is collected once
def test_tests_sharing_a_steps_server_or_database_share_a_group_and_the_rest_have_none(every):
    """Shared servers group by step (both server kinds, checks too); modules of steps 9 and 10 join theirs."""
    files = ("tests/test_stages.py", "tests/test_users.py", "tests/test_history.py", "tests/test_runner.py")
    groups = {node: group for node, (group, _) in every.items() if node.startswith(files)}
    page = "tests/test_stages.py::test_the_page_names_its_stage"
    assert groups[f"{page}[runserver-04-routing]"] == groups[f"{page}[daphne-04-routing]"] == "server-04-routing"
    assert groups[f"{page}[runserver-09-users]"] == "server-09-users"
    assert {group for node, group in groups.items() if node.startswith("tests/test_users.py")} == {"server-09-users"}
    check = "tests/test_stages.py::test_each_check_of_the_step_passes_against_its_snapshot"
    assert groups[f"{check}[04-routing-compiles]"] == groups[f"{check}[04-routing-handshake_accepted-daphne]"] == (
        "server-04-routing")
    assert {group for node, group in groups.items() if node.startswith("tests/test_history.py")} == {
        "server-10-history"} == {groups[f"{check}[10-history-history_replayed-runserver]"]}
    assert groups["tests/test_runner.py::test_list_shows_every_step_in_order"] == "-"


@pytest.mark.xdist_group("collects-the-suite")  # one worker, so the suite is collected once
def test_the_fast_selection_has_no_notebook_browser_redis_or_python_matrix_test(tmp_path, every):
    """--fast collects every test but those marked notebook, browser, redis, debian or pythons."""
    fast = collected(tmp_path, "-m", FAST)
    slow = {"notebook", "browser", "redis", "debian", "pythons"}
    assert fast and not [node for node, (_, marks) in fast.items() if marks & slow]
    assert set(fast) == {node for node, (_, marks) in every.items() if not marks & slow}
    assert not [node for node in fast if node.startswith(("tests/test_notebooks.py", "tests/test_users_browser.py"))]
    for left_out in ("test_two_servers_share_a_room_through_redis", "test_step_4_echoes_on_python",
                     "test_a_new_user_on_debian_testing_follows_the_readme_on_python"):
        assert [node for node in every if left_out in node] and not [node for node in fast if left_out in node]


# Records which worker set up each test, then skips it: the schedule is what is under test, not the tests.
WHERE = textwrap.dedent("""
    import os, pytest

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(item):
        with open(os.environ["WHERE_LOG"], "a") as log:
            log.write(f"{os.environ['PYTEST_XDIST_WORKER']}\\t{item.nodeid}\\n")
        pytest.skip("only the schedule is looked at")
""")


def test_a_parallel_run_keeps_each_group_on_one_worker(tmp_path):
    """Under `-n 2 --dist loadgroup`, both server kinds of each step's page test run on the same worker."""
    (tmp_path / "where_probe.py").write_text(WHERE)
    log = tmp_path / "where.log"
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "where_probe",
         *pytest_args(["tests/test_stages.py", "-k", "page_names"], environ={"WORKBOOK_TEST_WORKERS": "2"})],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)]), "WHERE_LOG": str(log)},
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    workers: dict[str, set[str]] = {}
    for line in log.read_text().splitlines():
        worker, nodeid = line.split("\t")
        step = nodeid.split("[", 1)[1].split("-", 1)[1]  # [runserver-04-routing] → 04-routing]
        workers.setdefault(step, set()).add(worker)
    assert len(workers) >= 9 and all(len(found) == 1 for found in workers.values()), workers
    assert len(set().union(*workers.values())) == 2, "both workers should have had work"


class Item:
    """What xdist_order reads of a collected test: its node id and its marks."""

    def __init__(self, nodeid: str, group: str | None = None, marks: tuple[str, ...] = ()):
        self.nodeid, self.group, self.marks = nodeid, group, marks

    def get_closest_marker(self, name: str):
        return object() if name in self.marks else None


def test_the_longest_groups_are_handed_out_first_and_a_group_stays_together_in_its_order():
    """Groups go longest first by the durations kept from earlier runs; unknown tests count by their kind."""
    items = [Item("a1", "a"), Item("solo"), Item("b1", "b"), Item("a2", "a"), Item("nb", marks=("notebook",)),
             Item("b2", "b"), Item("new")]
    known = {"a1": 1.0, "a2": 2.0, "solo": 4.0, "b1": 5.0, "b2": 0.5}
    ordered = xdist_order.longest_first(items, lambda item: item.group, known)
    # nb: never measured, but a notebook (LONG); b: 5.5 s; solo: 4 s; a: 3 s; new: unknown (UNKNOWN, 1 s).
    assert [item.nodeid for item in ordered] == ["nb", "b1", "b2", "solo", "a1", "a2", "new"]
    # Without any measurement, the long kinds still go first and the rest keep their collection order.
    cold = xdist_order.longest_first(items, lambda item: item.group, {})
    assert [item.nodeid for item in cold] == ["nb", "a1", "a2", "b1", "b2", "solo", "new"]


def test_each_run_adds_its_durations_to_the_kept_ones(tmp_path):
    """A run of a few tests updates only theirs; a missing or foreign cache entry counts as nothing known."""
    class Cache(dict):
        def set(self, key, value):
            self[key] = json.loads(json.dumps(value))

    cache = Cache()
    assert xdist_order.known(cache) == {} and xdist_order.known(None) == {}
    xdist_order.remember(cache, {"a": 1.23456, "b": 2.0})
    xdist_order.remember(cache, {"b": 3.0})
    assert xdist_order.known(cache) == {"a": 1.235, "b": 3.0}
    cache[xdist_order.KEY] = ["not", "ours"]
    assert xdist_order.known(cache) == {}
