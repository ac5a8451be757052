"""Every notebook executes end to end on the smoke profile (papermill), and writes its tables,
figures and the report into a scratch results folder."""
from __future__ import annotations

import json
import os

import pandas as pd
import pytest

from brcd_lib.experiments import reproduce

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def smoke_results(tmp_path_factory):
    root = tmp_path_factory.mktemp("results")
    reproduce.run("smoke", results_root=str(root), force=True)
    return root / "smoke"


def test_every_notebook_ran(smoke_results):
    log = json.loads((smoke_results / "run_log.json").read_text())
    names = [os.path.basename(n) for n in reproduce.list_notebooks()]
    assert len(names) == 11
    assert sorted(log["notebooks"]) == sorted(names)
    assert all(e["status"] == "ok" for e in log["notebooks"].values())
    for n in names:
        assert (smoke_results / "notebooks" / n).exists()


def test_main_table_has_every_method(smoke_results):
    rows = pd.read_csv(smoke_results / "tables" / "main_rows.csv")
    expected = {"teacher", "LSH", "ITQ", "none", "kd", "sp", "pkt", "rkd", "crd", "sskd", "crcd",
                "packd", "brcd"}
    assert expected <= set(rows["method"])
    for col in ("commit", "config_hash", "split_hash", "seed", "versions", "device"):
        assert col in rows.columns and rows[col].notna().all()
    assert set(rows.loc[rows["method"] == "brcd", "paradigm"]) == {"symmetric", "asymmetric"}
    # the collapse check raises no false alarm on the smoke teacher (a trained, healthy model)
    assert (rows.loc[rows["method"] == "teacher", "warnings"].fillna("") == "").all()


def test_tables_and_figures_written(smoke_results):
    for t in ("data_splits", "teachers", "kmeans_elbow", "main_table", "ablation_table",
              "generality_table", "sensitivity_table", "efficiency_profile_models", "pr_curves"):
        assert (smoke_results / "tables" / f"{t}.csv").exists(), t
        assert (smoke_results / "tables" / f"{t}.md").exists(), t
    for f in ("data_samples", "kmeans_elbow", "main_results", "ablations", "cluster_bit_means",
              "redundancy_vs_delta", "sensitivity", "map_vs_latency", "tsne_codes", "case_study"):
        assert (smoke_results / "figures" / f"{f}.png").stat().st_size > 1000, f
    report = (smoke_results / "README.md").read_text()
    assert "## Manifest" in report and "main_table" in report


def test_rerun_skips_finished_notebooks(smoke_results, capsys):
    reproduce.run("smoke", results_root=str(smoke_results.parent), only=["01"])
    assert "[skip] 01_data_protocols.ipynb" in capsys.readouterr().out


def test_fresh_cache_reruns_despite_committed_results(smoke_results, tmp_path, capsys):
    """A fresh clone has the committed results and run_log.json but no cache: it regenerates."""
    reproduce.run("smoke", results_root=str(smoke_results.parent), only=["01"],
                  cache_dir=str(tmp_path / "fresh-cache"))
    out = capsys.readouterr().out
    assert "[run ] 01_data_protocols.ipynb" in out and "[skip]" not in out
    reproduce.run("smoke", results_root=str(smoke_results.parent), only=["01"],
                  cache_dir=str(tmp_path / "fresh-cache"))
    assert "[skip] 01_data_protocols.ipynb" in capsys.readouterr().out
