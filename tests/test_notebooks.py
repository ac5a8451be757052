"""Every notebook executes end to end on the smoke profile (papermill), and writes its tables,
figures and the report into a scratch results folder."""
from __future__ import annotations

import json
import re
import os

import pandas as pd
import pytest

from brcd_lib.experiments import reproduce

pytestmark = pytest.mark.slow


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


# ---------------------------------------------------------------- issue #15: JupyterLab front door


def _executed(smoke_results, name):
    return json.loads((smoke_results / "notebooks" / f"{name}.ipynb").read_text())


def _outputs(doc):
    for cell in doc["cells"]:
        yield from cell.get("outputs", [])


def test_every_written_figure_is_an_image_output_of_its_notebook(smoke_results):
    """The PNG a notebook writes is the image it shows: its bytes are an image/png output."""
    import base64

    from brcd_lib.reporting.report import MANIFEST

    checked = 0
    for _, nb, _, figs in MANIFEST:
        doc = _executed(smoke_results, nb)
        images = {"".join(o["data"]["image/png"]).replace("\n", "") for o in _outputs(doc)
                  if "image/png" in o.get("data", {})}
        for stem in figs:
            path = smoke_results / "figures" / f"{stem}.png"
            if not path.exists():
                continue
            assert base64.b64encode(path.read_bytes()).decode() in images, f"{nb}: {stem}.png"
            checked += 1
        # no figure is shown as text only ("<Figure size 1100x400 with 2 Axes>")
        for o in _outputs(doc):
            text = "".join(o.get("data", {}).get("text/plain", ""))
            assert not ("<Figure size" in text and "image/png" not in o.get("data", {})), nb
    assert checked >= 20


def test_no_warning_error_or_stderr_output(smoke_results):
    import re

    for nb in reproduce.list_notebooks():
        doc = _executed(smoke_results, os.path.basename(nb)[:-6])
        for o in _outputs(doc):
            assert o["output_type"] != "error", (nb, o.get("ename"))
            assert not (o["output_type"] == "stream" and o["name"] == "stderr"), (nb, o["text"])
            text = "".join(o.get("text", "")) + "".join(o.get("data", {}).get("text/plain", ""))
            assert not re.search(r"\w+Warning\b", text), (nb, text[:300])


def test_tables_display_as_html_without_index_or_literal_bold(smoke_results):
    doc = _executed(smoke_results, "04_main_results")
    html = ["".join(o["data"]["text/html"]) for o in _outputs(doc) if "text/html" in o.get("data", {})]
    assert html and any("<strong>" in h for h in html)
    assert not any("**" in h for h in html)
    assert not any("<th></th>" in h for h in html)  # no blank header of an index column


def test_no_machine_paths_in_generated_results(smoke_results):
    """Nothing under results/<profile> spells out this machine's folders (the scratch results
    root lives under /tmp, so a leak of the results, cache or repository path shows)."""
    from pathscan import scan

    assert scan(smoke_results) == {}


def test_executed_copies_carry_this_runs_wall_time_and_portable_paths(smoke_results):
    doc = _executed(smoke_results, "01_data_protocols")
    header = "".join(doc["cells"][0]["source"])
    assert "Wall time of this run:" in header and "Wall time per profile:" not in header
    meta = doc["metadata"]
    assert meta["brcd"] == {"profile": "smoke", "notebook": "01_data_protocols.ipynb"}
    assert meta["papermill"]["input_path"] == "notebooks/01_data_protocols.ipynb"
    assert "results_root" not in meta["papermill"]["parameters"]


def test_executed_copies_show_one_parameters_cell_with_the_values_used(smoke_results):
    """Issue #27: papermill's injected-parameters cell is merged into the parameters cell."""
    for nb in reproduce.list_notebooks():
        cells = _executed(smoke_results, os.path.basename(nb)[:-6])["cells"]
        tags = [t for c in cells for t in c["metadata"].get("tags", [])]
        assert tags.count("parameters") == 1 and "injected-parameters" not in tags, nb
        params = "".join(next(c["source"] for c in cells
                              if "parameters" in c["metadata"].get("tags", [])))
        assert re.search(r'^profile = "smoke" +# ', params, re.M), params
        assert re.search(r"^progress = (True|False) +# ", params, re.M), params


def test_a_grid_says_collapsed_students_once(smoke_results):
    """Issue #27: no per-run collapse warning in a notebook; a grid's one line says why it is
    expected on smoke."""
    for nb in reproduce.list_notebooks():
        doc = _executed(smoke_results, os.path.basename(nb)[:-6])
        text = "".join("".join(o.get("text", "")) for o in _outputs(doc))
        assert "training probably diverged or stalled (check the learning rate" not in text, nb
        for line in (ln for ln in text.splitlines() if "collapsed codes" in ln):
            assert "Expected on the smoke profile" in line, line


def test_report_has_contents_and_no_dead_links(smoke_results):
    import re

    report = (smoke_results / "README.md").read_text()
    assert "## Contents" in report
    assert "Incomplete" not in report  # every notebook wrote what this profile asks of it
    for target in re.findall(r"\]\(([^)#\s]+)\)", report):
        assert (smoke_results / target).exists(), target


def _papermill(cwd, out, cache):
    import subprocess
    import sys

    from brcd_lib.paths import repo_root

    env = {k: v for k, v in os.environ.items() if k != "BRCD_RESULTS"}
    env.update(BRCD_CACHE=str(cache), PYTHONPATH=str(repo_root()))
    nb = repo_root() / "notebooks" / "01_data_protocols.ipynb"
    kernel = reproduce._kernel_for(str(nb), None)
    return subprocess.run([sys.executable, "-m", "papermill", os.path.relpath(nb, cwd), str(out),
                           "-p", "profile", "smoke", "-k", kernel, "--no-progress-bar"],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def test_papermill_from_the_root_and_from_notebooks_writes_into_the_repository(tmp_path):
    """`papermill notebooks/01_data_protocols.ipynb out.ipynb -p profile smoke` writes
    results/smoke/ of the repository, run from the root or from notebooks/."""
    import time

    from brcd_lib.paths import repo_root

    root = repo_root()
    table = root / "results" / "smoke" / "tables" / "data_splits.csv"
    outside = {root.parent / "results", root / "notebooks" / "results"}
    before = {p for p in outside if p.exists()}
    for cwd in (root, root / "notebooks"):
        t0 = time.time()
        out = tmp_path / f"out_{cwd.name}.ipynb"
        proc = _papermill(cwd, out, tmp_path / "cache")
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert table.exists() and table.stat().st_mtime >= t0 - 1, cwd
        assert {p for p in outside if p.exists()} == before
        doc = json.loads(out.read_text())
        assert any("image/png" in o.get("data", {}) for o in _outputs(doc))


def test_report_alone_on_an_empty_results_root_fails_with_the_fix(tmp_path, capsys):
    rc = reproduce.main(["--profile", "smoke", "--only", "11", "--results-root", str(tmp_path)])
    err = capsys.readouterr().err
    assert rc == 1
    assert "NothingToReport" in err and "python -m brcd_lib.reproduce --profile smoke" in err
    assert "Traceback" not in err
    assert not (tmp_path / "smoke" / "README.md").exists()


def test_a_relative_results_root_is_one_folder(tmp_path, monkeypatch, capsys):
    """--results-root rel from another working directory: every output lands in <cwd>/rel."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("BRCD_CACHE", str(tmp_path / "cache"))
    assert reproduce.main(["--profile", "smoke", "--only", "01", "--results-root", "rel"]) == 0
    out = tmp_path / "rel" / "smoke"
    assert (out / "notebooks" / "01_data_protocols.ipynb").exists()
    assert (out / "tables" / "data_splits.csv").exists()
    assert (out / "figures" / "data_samples.png").exists()
    from brcd_lib.paths import notebooks_dir

    assert not (notebooks_dir() / "rel").exists()


# ---------------------------------------------------------------- issue #12: the rerun check


def test_compare_passes_an_identical_rerun_and_fails_a_moved_cell(smoke_results, tmp_path, capsys):
    """``--compare`` reruns into a scratch root (here: the finished smoke root, so nothing
    executes again) and compares cell by cell with the committed root: PASS per table for the
    same rows, FAIL with the moved cell named when one committed cell differs."""
    import shutil

    committed = tmp_path / "committed"
    shutil.copytree(smoke_results / "tables", committed / "smoke" / "tables")
    argv = ["--profile", "smoke", "--compare", "--results-root", str(smoke_results.parent),
            "--committed-root", str(committed)]
    assert reproduce.main(argv) == 0
    out = capsys.readouterr().out
    assert "PASS main" in out and "PASS ablations" in out and "FAIL" not in out
    assert (smoke_results / "compare.md").exists()
    rows = pd.read_csv(committed / "smoke" / "tables" / "main_rows.csv")
    rows.loc[rows["method"] == "kd", "value"] += 0.3
    rows.to_csv(committed / "smoke" / "tables" / "main_rows.csv", index=False)
    assert reproduce.main(argv) == 1
    out = capsys.readouterr().out
    assert "FAIL main" in out and "kd" in out and "PASS ablations" in out


def test_compare_refuses_to_overwrite_the_committed_results(smoke_results, capsys):
    argv = ["--profile", "smoke", "--compare", "--results-root", str(smoke_results.parent),
            "--committed-root", str(smoke_results.parent)]
    assert reproduce.main(argv) == 2
    assert "scratch --results-root" in capsys.readouterr().err
