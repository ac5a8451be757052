"""Under mutmut, a mutant's covering tests run fastest first (used by conftest.py).

mutmut hands pytest the covering tests in set order and stops at the first failure, so a mutant
that a 5 ms exact test kills could first sit through seconds of report-writing tests. The
durations are the ones mutmut recorded in its stats phase (``mutmut-stats.json``, in the
``mutants/`` folder it runs from). The order changes no verdict: a mutant is killed when any
covering test fails.

pytest imports conftest.py again in every session, i.e. in every mutant's process; this module
is imported once and stays in ``sys.modules``, so the file (1.3 MB of JSON) is parsed once in the
process mutmut forks each mutant from (conftest.py warms it there) rather than once per mutant.
A file that is missing or unreadable is not cached, and a rewritten file is parsed again."""
from __future__ import annotations

import json
import math
import os

STATS_FILE = "mutmut-stats.json"
_cache: dict[tuple, dict[str, float]] = {}


def under_mutant() -> bool:
    """True inside one mutant's test session (not mutmut's stats, clean or forced-fail runs)."""
    return "__mutmut_" in os.environ.get("MUTANT_UNDER_TEST", "")


def durations(path: str = STATS_FILE) -> dict[str, float] | None:
    """mutmut's recorded duration of each test, by node id; None when the file cannot be read."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    key = (os.path.abspath(path), st.st_mtime_ns, st.st_size)
    if key not in _cache:
        try:
            with open(path) as f:
                found = json.load(f)["duration_by_test"]
        except (OSError, ValueError, KeyError, TypeError):
            return None
        _cache.clear()  # one stats file per process tree
        _cache[key] = found
    return _cache[key]


def order_fastest_first(items) -> None:
    """Sort pytest items in place by recorded duration, ascending; equal durations keep their
    order and tests without a recorded duration go last. No-op outside a mutant's session."""
    if not under_mutant():
        return
    found = durations()
    if found is None:
        return
    items.sort(key=lambda item: found.get(item.nodeid, math.inf))
