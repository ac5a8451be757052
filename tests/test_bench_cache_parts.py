"""benchmarks/bench_cache.py keeps each profile's cached-vs-uncached study: rerunning one profile
(or the speed part) does not drop another profile's rows."""
from __future__ import annotations

import argparse

from benchmarks import bench_cache


def test_rerun_parts_are_per_profile():
    args = argparse.Namespace(parts=["map"], profile="fashion")
    assert bench_cache._rerun_parts(args) == {"map/fashion"}
    args = argparse.Namespace(parts=["speed", "map"], profile="digits")
    assert bench_cache._rerun_parts(args) == {"speed", "map/digits"}


def test_legacy_map_rows_are_named_by_their_profile():
    row = {"part": "map", "notes": "mean of 3 seeds [0, 1, 2] (std 0.0052); profile digits, BRCD"}
    assert bench_cache._normalise_part(row)["part"] == "map/digits"
    assert bench_cache._normalise_part({"part": "map", "notes": ""})["part"] == "map/digits"
    assert bench_cache._normalise_part({"part": "speed", "notes": "x"})["part"] == "speed"
    assert bench_cache._normalise_part({"part": "map/fashion"})["part"] == "map/fashion"
