"""The runner's notebook fingerprint: code cells count, markdown does not."""
from __future__ import annotations

import json

from brcd_lib.experiments import reproduce


def _write(path, cells):
    path.write_text(json.dumps({"cells": cells, "metadata": {}, "nbformat": 4,
                                "nbformat_minor": 5}))
    return str(path)


def _cell(kind, src):
    return {"cell_type": kind, "source": src, "metadata": {}}


def test_markdown_edits_keep_the_fingerprint_code_edits_change_it(tmp_path):
    base = [_cell("markdown", "# title"), _cell("code", ["x = 1\n", "print(x)"])]
    a = reproduce._sha(_write(tmp_path / "a.ipynb", base))
    b = reproduce._sha(_write(tmp_path / "b.ipynb",
                              [_cell("markdown", "# title, wall time 12 s")] + base[1:]))
    c = reproduce._sha(_write(tmp_path / "c.ipynb", base[:1] + [_cell("code", "x = 2\nprint(x)")]))
    d = reproduce._sha(_write(tmp_path / "d.ipynb", base[:1] + [_cell("code", "x = 1\nprint(x)")]))
    assert a == b  # markdown only
    assert a != c  # code changed
    assert a == d  # list and string sources are the same text


def test_finished_marker_lives_in_the_cache_per_results_folder(tmp_path):
    p1 = reproduce._marker_path("digits", str(tmp_path / "r1" / "digits"), str(tmp_path))
    p2 = reproduce._marker_path("digits", str(tmp_path / "r2" / "digits"), str(tmp_path))
    assert p1 != p2 and p1.startswith(str(tmp_path / "reproduce"))


def test_stamp_wall_times_rewrites_the_header_line_only(tmp_path):
    nbdir, results = tmp_path / "nb", tmp_path / "results"
    nbdir.mkdir()
    code = _cell("code", "x = 1")
    path = _write(nbdir / "01_data.ipynb",
                  [_cell("markdown", ["# 01\n", "What it does.\n",
                                      "Wall time per profile: recorded later."]), code])
    before = reproduce._sha(path)
    for profile, wall in (("smoke", 9.4), ("digits", 25.6)):
        (results / profile).mkdir(parents=True)
        (results / profile / "run_log.json").write_text(json.dumps(
            {"notebooks": {"01_data.ipynb": {"status": "ok", "wall_s": wall}}}))
    (results / "fashion").mkdir()  # a failed notebook is not quoted
    (results / "fashion" / "run_log.json").write_text(json.dumps(
        {"notebooks": {"01_data.ipynb": {"status": "failed: X", "wall_s": 3.0}}}))
    assert reproduce.stamp_wall_times(str(results), notebook_dir=str(nbdir)) == [path]
    doc = json.loads((nbdir / "01_data.ipynb").read_text())
    header = "".join(doc["cells"][0]["source"])
    assert header.startswith("# 01\nWhat it does.\nWall time per profile: digits 26 s, smoke 9 s (")
    assert "fashion" not in header and header.count("Wall time") == 1
    assert doc["cells"][1] == code and reproduce._sha(path) == before
    assert reproduce.stamp_wall_times(str(results), notebook_dir=str(nbdir)) == []  # idempotent


def test_the_run_log_records_the_runs_cached_before_each_notebook(tmp_path, monkeypatch):
    """A committed result says whether it came from an empty run cache: 0 runs before the first
    notebook, then what the earlier notebooks (or anything else) left in ``<cache>/runs/<profile>``."""
    import os

    import papermill

    nbs = tmp_path / "nbs"
    nbs.mkdir()
    for i, name in enumerate(("01_a.ipynb", "02_b.ipynb")):
        _write(nbs / name, [_cell("code", f"x = {i}")])
    runs = tmp_path / "cache" / "runs" / "smoke"

    def execute(nb, out, **kw):  # no kernel: the first notebook "trains" two runs
        with open(nb) as f, open(out, "w") as g:
            g.write(f.read())
        if os.path.basename(nb) == "01_a.ipynb":
            for key in ("teacher-1", "student-2"):
                (runs / key).mkdir(parents=True)
            (runs / "logs").mkdir()  # the store's log folder is not a run

    monkeypatch.setattr(papermill, "execute_notebook", execute)
    assert reproduce.cached_runs("smoke", str(tmp_path / "cache")) == 0
    log = reproduce.run("smoke", results_root=str(tmp_path / "r"), notebook_dir=str(nbs),
                        cache_dir=str(tmp_path / "cache"))
    assert log["notebooks"]["01_a.ipynb"]["runs_cached_before"] == 0
    assert log["notebooks"]["02_b.ipynb"]["runs_cached_before"] == 2
    assert reproduce.cached_runs("smoke", str(tmp_path / "cache")) == 2
    assert reproduce.cached_runs("digits", str(tmp_path / "cache")) == 0
