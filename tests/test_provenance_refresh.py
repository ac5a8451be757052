"""The report's provenance section and the results index are rewritten from the finished
``run_log.json`` after the runner's last notebook: notebook 11 writes the report while it runs, so
on its own it can only show the previous run's commit and wall times (a committed digits report
once named commit 77c3a5b for a claims table recomputed at ea97ba0)."""
from __future__ import annotations

import json

import brcd_lib.reproduce as cli
from brcd_lib.experiments import reproduce as runner
from brcd_lib.reporting.report import refresh_provenance

LOG = {"notebooks": {
    "01_data.ipynb": {"status": "ok", "wall_s": 7.4, "commit": "aaaa", "runs_cached_before": 0},
    "11_report.ipynb": {"status": "ok", "wall_s": 12.6, "commit": "bbbb+dirty",
                        "runs_cached_before": 241},
    "02_x.ipynb": {"status": "failed: RuntimeError", "wall_s": None}},
    "commit": "bbbb+dirty", "device": "cpu (x86_64, 2 threads)", "versions": "python=3.11",
    "timestamp": "2026-12-05T21:00:00+00:00"}

README = ("# Results: profile `p`\n\nclaims text\n\n"
          '<a id="provenance"></a>\n\n## Provenance\n\n- commit: `old`\n| stale | table |\n\n'
          '<a id="manifest"></a>\n\n## Manifest\n\nkept\n')


def _tree(tmp_path, readme=README, log=LOG, index=True):
    root = tmp_path / "results" / "p"
    root.mkdir(parents=True)
    (root / "README.md").write_text(readme, encoding="utf-8")
    if log is not None:
        (root / "run_log.json").write_text(json.dumps(log), encoding="utf-8")
    if index:
        (tmp_path / "results" / "README.md").write_text("stale index\n", encoding="utf-8")
    return root


def test_the_provenance_section_is_rewritten_between_its_anchor_and_the_next(tmp_path):
    root = _tree(tmp_path)
    done = refresh_provenance(str(root))
    assert done == [str(root / "README.md"), str(tmp_path / "results" / "README.md")]
    text = (root / "README.md").read_text(encoding="utf-8")
    assert text == (
        "# Results: profile `p`\n\nclaims text\n\n"
        '<a id="provenance"></a>\n\n## Provenance\n\n'
        "- commit of the last notebook run: `bbbb+dirty`\n"
        "- device: cpu (x86_64, 2 threads)\n- versions: python=3.11\n"
        "- finished: 2026-12-05T21:00:00+00:00\n\n"
        "| notebook | status | wall time (s) | commit | runs cached before |\n"
        "|---|---|--:|---|--:|\n"
        "| 01_data.ipynb | ok | 7 | aaaa | 0 |\n"
        "| 02_x.ipynb | failed: RuntimeError | — | — | — |\n"
        "| 11_report.ipynb | ok | 13 | bbbb+dirty | 241 |\n"
        "| **total** | | 20 | | |\n\n"
        "(`python -m brcd_lib.reproduce` rewrites this section from `run_log.json` after its last "
        "notebook; notebook 11 run on its own, e.g. in Lab, shows its own line as of the previous "
        "run.)\n\n"
        '<a id="manifest"></a>\n\n## Manifest\n\nkept\n')
    index = (tmp_path / "results" / "README.md").read_text(encoding="utf-8")
    assert "| p | [p/README.md](p/README.md) | 3 | 20 | bbbb+dirty |" in index


def test_nothing_is_written_without_a_report_or_a_run_log(tmp_path):
    root = _tree(tmp_path, log=None)
    assert refresh_provenance(str(root)) == []
    assert (root / "README.md").read_text(encoding="utf-8") == README
    assert (tmp_path / "results" / "README.md").read_text(encoding="utf-8") == "stale index\n"
    assert refresh_provenance(str(tmp_path / "results" / "absent")) == []


def test_a_report_without_the_section_keeps_its_text_and_the_index_is_still_rewritten(tmp_path):
    root = _tree(tmp_path, readme="# no provenance here\n")
    assert refresh_provenance(str(root)) == [str(tmp_path / "results" / "README.md")]
    assert (root / "README.md").read_text(encoding="utf-8") == "# no provenance here\n"


def test_the_command_line_refreshes_after_a_run_and_not_after_a_failed_one(tmp_path, monkeypatch):
    seen = []
    monkeypatch.setattr(cli, "refresh_provenance", lambda d: seen.append(d))
    monkeypatch.setattr(runner, "run", lambda *a, **k: {})
    argv = ["--profile", "smoke", "--results-root", str(tmp_path / "r")]
    assert cli.main(argv) == 0
    assert seen == [str(tmp_path / "r" / "smoke")]

    def fail(*a, **k):
        raise runner.NotebookFailed("01 failed")
    monkeypatch.setattr(runner, "run", fail)
    assert cli.main(argv) == 1
    assert len(seen) == 1
