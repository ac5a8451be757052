"""benchmarks/bench_retrieval.py at a tiny size: every arm runs, every arm is exact against the
benchmark's own stable-argsort reference, the load is recorded per round, and the before/after
section reads an earlier run's CSV."""
from __future__ import annotations

import csv

import pytest

pytest.importorskip("faiss")

from benchmarks import bench_retrieval as bench  # noqa: E402


def test_tiny_run_is_exact_and_records_every_round(tmp_path):
    argv = ["--bits", "16", "64", "--labels", "single", "--n-query", "40", "--n-db", "3000",
            "--k", "50", "--repeats", "2", "--large-db", "0", "--no-memory",
            "--import-repeats", "0", "--out-dir", str(tmp_path)]
    rows = bench.main(argv)
    cases = {r["case"] for r in rows}
    assert len(cases) == 4  # 16 and 64 bits, the 80-label case and the ties case
    for case in cases:
        arms = {r["config"] for r in rows if r["case"] == case}
        assert {"heap, 1 thread", "counting, 1 thread", "heap, 2 threads",
                "counting, 2 threads", bench.DEFAULT_CALL, "packed=True"} <= arms
    assert all(r["equal_to_reference"] for r in rows), [r for r in rows
                                                         if not r["equal_to_reference"]]
    with open(tmp_path / "retrieval.csv", newline="") as fh:
        written = list(csv.DictReader(fh))
    assert all(len(r["load_1min_rounds"].split(";")) == 2 for r in written)
    assert all(len(r["walls_s"].split(";")) == 2 for r in written)
    # the run compared with itself: the section lists every case
    bench.main(["--compare-only", "--before", str(tmp_path / "retrieval.csv"),
                "--out-dir", str(tmp_path)])
    text = (tmp_path / "retrieval.md").read_text()
    # a committed report names no machine folder: the scratch folder is neither in the command
    # line of the header nor in the before/after section
    assert str(tmp_path) not in text
    assert "--out-dir <a folder outside the repository>/" in text
    assert text.count(bench.BEFORE_HEADING) == 1
    section = text.split(bench.BEFORE_HEADING)[1].split("\n## ")[0]
    assert all(case in section for case in cases)
