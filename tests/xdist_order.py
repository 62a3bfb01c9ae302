"""The order in which a parallel run hands out its groups: the longest first, by what the last runs measured.

pytest-xdist (`--dist loadgroup`) gives each worker the next group in collection order, and a worker keeps a group
until it is done. A long group near the end leaves one worker running it alone while the other has nothing left:
handing out the longest groups first leaves the least idle time at the end (the longest-processing-time rule).

The controller records each test's setup + call + teardown time in pytest's cache (`.pytest_cache`, key
`workbook/durations`); every worker reads the same file before it orders its collection, so all of them order
alike, as xdist requires. A test the cache does not know yet counts UNKNOWN seconds, or LONG when it carries the
mark of a long kind: a first run (a clean clone, CI) starts the long kinds first, as it always did.
"""

from __future__ import annotations

from collections import defaultdict

KEY = "workbook/durations"
LONG_KINDS = ("debian", "pythons", "notebook")
LONG, UNKNOWN = 60.0, 1.0


def estimate(item, known: dict[str, float]) -> float:
    """The seconds a test is expected to take: measured before, or a guess by its kind."""
    if item.nodeid in known:
        return known[item.nodeid]
    return LONG if any(item.get_closest_marker(kind) for kind in LONG_KINDS) else UNKNOWN


def longest_first(items: list, group_of, known: dict[str, float]) -> list:
    """Order the items group by group, the longest group first; a group keeps its own order.

    `group_of(item)` names the item's xdist group, or None when it runs alone (then it is a group of one).
    """
    totals: dict[str, float] = defaultdict(float)
    first: dict[str, int] = {}
    for index, item in enumerate(items):
        group = group_of(item) or item.nodeid
        totals[group] += estimate(item, known)
        first.setdefault(group, index)

    def key(item):
        group = group_of(item) or item.nodeid
        return -totals[group], first[group]

    return sorted(items, key=key)  # stable: the items of one group stay in their collection order


def remember(cache, measured: dict[str, float]) -> None:
    """Add this run's durations to the ones kept from earlier runs (a run of a few tests updates only those)."""
    if cache is None or not measured:
        return
    kept = cache.get(KEY, {})
    kept = kept if isinstance(kept, dict) else {}
    kept.update({nodeid: round(seconds, 3) for nodeid, seconds in measured.items()})
    cache.set(KEY, kept)


def known(cache) -> dict[str, float]:
    """The durations kept from earlier runs; none when there is no cache (`-p no:cacheprovider`) or it is not ours."""
    kept = cache.get(KEY, {}) if cache is not None else {}
    if not isinstance(kept, dict):
        return {}
    return {nodeid: float(seconds) for nodeid, seconds in kept.items() if isinstance(seconds, (int, float))}
