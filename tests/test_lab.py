"""JupyterLab as the front door (issue #15): kernel, landing page, headers, paths, preflight,
display of tables and figures, report, output hygiene. Fast; the executed notebooks are checked
in test_notebooks.py and in a real browser in test_browser.py."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from brcd_lib import paths
from brcd_lib.experiments import reproduce
from brcd_lib.reporting.report import MANIFEST

REPO = paths.repo_root()
NOTEBOOKS = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def _doc(path):
    return json.loads(Path(path).read_text(encoding="utf-8"))


def _text(cell):
    src = cell["source"]
    return "".join(src) if isinstance(src, list) else src


def _links(markdown: str) -> list[str]:
    return re.findall(r"\]\(([^)\s]+)\)", markdown)


# ---------------------------------------------------------------- kernel
def test_notebooks_name_the_kernel_that_make_install_registers():
    makefile = (REPO / "Makefile").read_text()
    kernel = re.search(r"^KERNEL := (\S+)", makefile, re.M).group(1)
    display = re.search(r'--name \$\(KERNEL\) --display-name "([^"]+)"', makefile).group(1)
    assert re.search(r"^\$\(STAMP\):[^\n]*\n(\t[^\n]*\n)*\t[^\n]*ipykernel install", makefile, re.M)
    for nb in NOTEBOOKS:
        spec = _doc(nb)["metadata"]["kernelspec"]
        assert (spec["name"], spec["display_name"]) == (kernel, display), nb.name


def test_setup_cell_puts_the_notebooks_repository_first(tmp_path):
    """The first code cell after the parameters finds the repository from the working directory
    and puts it first on sys.path before any brcd_lib import; run from notebooks/ it makes a
    fresh interpreter import this repository's brcd_lib."""
    for nb in NOTEBOOKS:
        cells = [c for c in _doc(nb)["cells"] if c["cell_type"] == "code"]
        assert "parameters" in cells[0]["metadata"].get("tags", [])
        setup = _text(cells[1])
        assert setup.index("sys.path.insert(0, str(REPO))") < setup.index("brcd_lib."), nb.name
        assert "setup(profile, results_root, progress=progress" in setup, nb.name
        if "_grid(exp" in "".join(_text(c) for c in cells):  # a grid: where it trains is a parameter
            assert "setup(profile, results_root, progress=progress, executor=executor)" in setup
            assert re.search(r"^executor = None\b", _text(cells[0]), re.M), nb.name
    boot = _text([c for c in _doc(NOTEBOOKS[0])["cells"] if c["cell_type"] == "code"][1])
    boot = boot[:boot.index("from brcd_lib")] + "import brcd_lib\nprint(brcd_lib.__file__)\n"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run([sys.executable, "-c", boot], cwd=REPO / "notebooks", env=env,
                         capture_output=True, text=True, check=True).stdout.strip()
    assert Path(out) == REPO / "brcd_lib" / "__init__.py"


def test_setup_stops_a_kernel_that_imported_another_clones_brcd_lib(tmp_path):
    from brcd_lib.reporting.notebook import KernelMismatch, check_kernel

    other = tmp_path / "other-clone"
    (other / "brcd_lib").mkdir(parents=True)
    (other / "brcd_lib" / "paths.py").write_text("")
    (other / "notebooks").mkdir()
    with pytest.raises(KernelMismatch, match="Restart the kernel") as err:
        check_kernel(other / "notebooks")
    assert err.value._render_traceback_()[0].startswith("KernelMismatch: ")
    assert check_kernel(REPO / "notebooks").startswith("brcd_lib from this repository (commit ")


def test_runner_falls_back_to_python3_when_the_kernel_is_not_registered(tmp_path, capsys):
    nb = tmp_path / "01_x.ipynb"
    nb.write_text(json.dumps({"cells": [], "metadata": {"kernelspec": {"name": "no-such-kernel"}},
                              "nbformat": 4, "nbformat_minor": 5}))
    assert reproduce._kernel_for(str(nb), None) == "python3"
    assert "not registered" in capsys.readouterr().out
    assert reproduce._kernel_for(str(nb), "mine") == "mine"


# ---------------------------------------------------------------- landing page and headers
def test_landing_page_links_every_notebook_report_and_doc():
    start = (REPO / "START.md").read_text()
    links = _links(start)
    for target in links:
        if "://" not in target:  # a file: Lab shows "is a directory" for a folder
            assert (REPO / target.split("#")[0]).is_file(), target
    for nb in NOTEBOOKS:
        assert f"notebooks/{nb.name}" in links, nb.name
    for doc in sorted((REPO / "docs").glob("*.md")):
        assert f"docs/{doc.name}" in links, doc.name
    committed = subprocess.run(["git", "ls-files", "results/*/README.md"], cwd=REPO,
                               capture_output=True, text=True).stdout.split()
    for report in committed:
        assert report in links, report
    assert "README.md" in links
    makefile = (REPO / "Makefile").read_text()
    assert "--LabApp.default_url=/lab/tree/START.md" in makefile
    assert '--ServerApp.root_dir="$(CURDIR)"' in makefile


def test_markdown_opens_rendered_in_lab():
    overrides = json.loads((REPO / ".jupyter" / "lab-settings" / "overrides.json").read_text())
    viewers = overrides["@jupyterlab/docmanager-extension:plugin"]["defaultViewers"]
    assert viewers["markdown"] == "Markdown Preview"
    assert "--LabApp.app_settings_dir=\"$(CURDIR)/.jupyter/lab-settings\"" in \
        (REPO / "Makefile").read_text()


def test_headers_name_artefact_wall_times_neighbours_and_sections():
    artefact = {nb: what for what, nb, _, _ in MANIFEST}
    for i, nb in enumerate(NOTEBOOKS):
        cells = _doc(nb)["cells"]
        header = _text(cells[0])
        assert re.match(rf"# {nb.name[:2]} · \S", header), nb.name
        assert "**Paper artefact:**" in header, nb.name
        if nb.stem in artefact:
            assert f"**Paper artefact:** {artefact[nb.stem]}." in header, nb.name
        assert sum(line.startswith(reproduce.WALL_TIME_PREFIX) for line in header.split("\n")) == 1
        links = _links(header)
        if i > 0:
            assert NOTEBOOKS[i - 1].name in links, nb.name
        if i + 1 < len(NOTEBOOKS):
            assert NOTEBOOKS[i + 1].name in links, nb.name
        for target in links:
            assert (nb.parent / target.split("#")[0]).exists(), (nb.name, target)
        headings = [c for c in cells[1:] if c["cell_type"] == "markdown"
                    and _text(c).startswith("## ")]
        assert len(headings) >= 2, f"{nb.name}: section headings for Lab's table of contents"


def test_parameters_cells_anchor_results_to_the_repository():
    for nb in NOTEBOOKS:
        params = [c for c in _doc(nb)["cells"] if "parameters" in c["metadata"].get("tags", [])]
        assert len(params) == 1, nb.name
        src = _text(params[0])
        assert re.search(r"^results_root = None\b", src, re.M), nb.name
        assert re.search(r"^progress = True\b", src, re.M), nb.name
        assert "../" not in src, nb.name


def _filter_config() -> list[str]:
    """The ``git config`` commands of ``make nbstripout``, for this interpreter's environment."""
    dry = subprocess.run(["make", "-n", "-s", "nbstripout", f"VENV={sys.prefix}"], cwd=REPO,
                         capture_output=True, text=True, check=True).stdout
    return [line for line in dry.splitlines() if line.startswith("git config")]


def _scratch_clone(tmp_path, configs: list[str]) -> Path:
    """A git repository holding this checkout's notebooks and .gitattributes, committed as they
    are (without any filter: the bytes a clone gets), then the filter configured as
    ``make lab`` does, and every notebook touched so that git reads them through it."""
    repo = tmp_path / "clone"
    (repo / "notebooks").mkdir(parents=True)
    for nb in NOTEBOOKS:
        (repo / "notebooks" / nb.name).write_bytes(nb.read_bytes())
    for kept in (".gitattributes", ".gitignore"):
        (repo / kept).write_bytes((REPO / kept).read_bytes())
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"]
    for cmd in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "clone"]):
        subprocess.run(git + cmd, cwd=repo, check=True, capture_output=True)
    for c in configs:
        subprocess.run(c, shell=True, cwd=repo, check=True)
    later = time.time() + 5
    for nb in (repo / "notebooks").iterdir():
        os.utime(nb, (later, later))
    return repo


def _status(repo: Path) -> str:
    return subprocess.run(["git", "status", "--porcelain"], cwd=repo, capture_output=True,
                          text=True, check=True).stdout


def _saved_by_lab(path: Path, *, edit: str | None = None) -> None:
    """What opening, running and saving a notebook in JupyterLab writes: the kernel's
    language_info, widget state, outputs and execution counts, per-cell execution times and
    view state; the Jupyter server writes it with nbformat (sorted keys, indent 1)."""
    import platform

    import nbformat

    doc = _doc(path)
    doc["metadata"]["language_info"] = {
        "codemirror_mode": {"name": "ipython", "version": 3}, "file_extension": ".py",
        "mimetype": "text/x-python", "name": "python", "nbconvert_exporter": "python",
        "pygments_lexer": "ipython3", "version": platform.python_version()}
    doc["metadata"]["widgets"] = {"application/vnd.jupyter.widget-state+json": {
        "state": {}, "version_major": 2, "version_minor": 0}}
    for n, cell in enumerate(c for c in doc["cells"] if c["cell_type"] == "code"):
        cell["execution_count"] = n + 1
        cell["outputs"] = [{"output_type": "stream", "name": "stdout", "text": ["hi\n"]}]
        cell["metadata"]["execution"] = {"iopub.status.idle": "2026-01-01T00:00:00.000000Z"}
        cell["metadata"]["jupyter"] = {"outputs_hidden": False}
        if edit is not None and n == 1:
            cell["source"] = edit
    path.write_text(nbformat.writes(nbformat.from_dict(doc)) + "\n", encoding="utf-8")


def test_committed_notebooks_carry_no_outputs_and_are_nbstripout_fixed_points():
    """Each committed notebook is byte for byte what the configured filter writes (its key
    order, its stripped metadata): otherwise `git status` lists it in a fresh clone as soon as
    `make lab` configures the filter."""
    for nb in NOTEBOOKS:
        for cell in _doc(nb)["cells"]:
            if cell["cell_type"] == "code":
                assert cell["outputs"] == [] and cell["execution_count"] is None, nb.name
        assert "language_info" not in _doc(nb)["metadata"], nb.name
    pytest.importorskip("nbstripout")
    configs = _filter_config()
    clean = next(c for c in configs if "filter.nbstripout.clean" in c)
    keys = next(c for c in configs if "filter.nbstripout.extrakeys" in c)
    clean_cmd = re.search(r'clean "(.*)"$', clean).group(1)
    extra = re.search(r'extrakeys "(.*)"$', keys).group(1)
    assert "metadata.language_info" in extra.split()
    for nb in NOTEBOOKS:
        proc = subprocess.run(f"{clean_cmd} --extra-keys '{extra}'", shell=True,
                              stdin=open(nb, "rb"), capture_output=True, cwd=nb.parent)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout == nb.read_bytes(), f"{nb.name} is not in the filter's form: " \
            f"run `python -m nbstripout --keep-id --extra-keys '{extra}' notebooks/*.ipynb`"


def test_a_fresh_clone_stays_clean_after_make_lab_and_a_saved_notebook(tmp_path):
    """Issue #27: a clone's notebooks are clean once the filter is configured, still clean
    after JupyterLab opened, ran and saved one (outputs, language_info, widget state), and the
    provenance of a result computed there has no `+dirty`; a real code edit is a change."""
    pytest.importorskip("nbstripout")
    from brcd_lib.provenance import commit_of

    from brcd_lib.provenance import lab_post_save

    assert "--FileContentsManager.post_save_hook=brcd_lib.provenance.lab_post_save" in \
        (REPO / "Makefile").read_text()  # what `make lab` gives the Jupyter server
    repo = _scratch_clone(tmp_path, _filter_config())
    assert _status(repo) == ""
    saved = repo / "notebooks" / NOTEBOOKS[0].name
    _saved_by_lab(saved)
    assert "+dirty" not in commit_of(str(repo))  # content compared through the filter
    lab_post_save(model={"type": "notebook"}, os_path=str(saved), contents_manager=None)
    assert _status(repo) == ""
    edited = repo / "notebooks" / NOTEBOOKS[1].name
    _saved_by_lab(edited, edit="x = 1")
    lab_post_save(model={"type": "notebook"}, os_path=str(edited), contents_manager=None)
    assert _status(repo).split() == ["M", f"notebooks/{NOTEBOOKS[1].name}"]
    assert commit_of(str(repo)).endswith("+dirty")
    staged = subprocess.run(["git", "diff", "--cached", "--name-only"], cwd=repo,
                            capture_output=True, text=True).stdout
    assert staged == ""  # the hook never stages a change


def test_git_filter_keeps_outputs_out_of_commits(tmp_path):
    """The filter `make nbstripout` configures, with the committed .gitattributes: a notebook
    saved with outputs under notebooks/ is committed without them; results/ keeps them."""
    pytest.importorskip("nbstripout")
    attributes = (REPO / ".gitattributes").read_text()
    assert re.search(r"^notebooks/\*\.ipynb filter=nbstripout", attributes, re.M)
    assert not re.search(r"^(\*\.ipynb|results/)", attributes, re.M)
    configs = _filter_config()
    assert any("filter.nbstripout.clean" in c for c in configs)
    repo = tmp_path / "clone"
    (repo / "notebooks").mkdir(parents=True)
    (repo / "results").mkdir()
    run = lambda *cmd: subprocess.run(cmd, cwd=repo, check=True, capture_output=True, text=True)  # noqa: E731
    run("git", "init", "-q")
    for c in configs:
        subprocess.run(c, shell=True, cwd=repo, check=True)
    (repo / ".gitattributes").write_text(attributes)
    doc = _doc(NOTEBOOKS[0])
    doc["cells"][1]["outputs"] = [{"output_type": "stream", "name": "stdout", "text": ["hi\n"]}]
    doc["cells"][1]["execution_count"] = 3
    for where in ("notebooks", "results"):
        (repo / where / "n.ipynb").write_text(json.dumps(doc, indent=1))
    run("git", "add", "-A")
    staged = json.loads(run("git", "show", ":notebooks/n.ipynb").stdout)
    assert staged["cells"][1]["outputs"] == [] and staged["cells"][1]["execution_count"] is None
    assert [c.get("id") for c in staged["cells"]] == [c.get("id") for c in doc["cells"]]
    kept = json.loads(run("git", "show", ":results/n.ipynb").stdout)
    assert kept["cells"][1]["outputs"]


# ---------------------------------------------------------------- method.md
def test_every_method_md_reference_names_a_section_of_docs_method_md():
    method = (REPO / "docs" / "method.md").read_text()
    sections = set(re.findall(r"^## (\d+)\. ", method, re.M))
    assert sections == {str(i) for i in range(1, 9)}
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"],
                           cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    refs = 0
    for name in files:
        if name.startswith("results/") or not name.endswith((".py", ".md", ".ipynb", ".toml")):
            continue
        text = (REPO / name).read_text(encoding="utf-8", errors="replace")
        assert "/work/" + "shared" not in text, name  # the kit cites its own docs/method.md
        for number in re.findall(r"method\.md(?:\]\([^)]*\))?,? (?:section |§)(\d+)", text):
            assert number in sections, (name, number)
            refs += 1
    assert refs > 20


# ---------------------------------------------------------------- paths
def test_results_root_follows_brcd_results_whatever_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.delenv("BRCD_RESULTS", raising=False)
    monkeypatch.chdir(tmp_path)
    assert paths.results_root() == REPO / "results"
    monkeypatch.setenv("BRCD_RESULTS", "rel")
    assert paths.results_root() == tmp_path / "rel"
    assert paths.anchor_environment()["BRCD_RESULTS"] == str(tmp_path / "rel")
    monkeypatch.chdir(REPO / "notebooks")  # a kernel in notebooks/ keeps the same folder
    assert paths.results_root() == tmp_path / "rel"


def test_portable_paths(monkeypatch, tmp_path):
    monkeypatch.setenv("BRCD_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("BRCD_RESULTS", raising=False)
    assert paths.portable(REPO / "results" / "digits") == "results/digits"
    assert paths.portable(str(REPO)) == "."
    assert paths.portable(f"split file: {tmp_path}/cache/splits/a.npz") == \
        "split file: $BRCD_CACHE/splits/a.npz"
    assert paths.portable(f"{REPO}-other/x") == f"{REPO}-other/x"  # a whole path component only


def test_uncommitted_profiles_are_git_ignored():
    out = subprocess.run(["git", "check-ignore", "results/smoke/README.md", "results/paper/x.csv",
                          "results/digits/notebooks/01_a.failed.ipynb", "results/digits/README.md"],
                         cwd=REPO, capture_output=True, text=True).stdout.split()
    assert out == ["results/smoke/README.md", "results/paper/x.csv",
                   "results/digits/notebooks/01_a.failed.ipynb"]


def test_committed_results_carry_no_machine_paths():
    """results/ (what is committed and what a run writes there) spells out no machine folder.
    A profile folder whose executed notebooks predate the portable runner (no metadata.brcd)
    is reported as a skip until it is regenerated."""
    from pathscan import scan

    stale = []
    for folder in sorted(p for p in (REPO / "results").iterdir() if p.is_dir()):
        executed = sorted((folder / "notebooks").glob("*.ipynb"))
        if executed and "brcd" not in _doc(executed[0]).get("metadata", {}):
            stale.append(folder.name)
            continue
        assert scan(folder) == {}, folder.name
    for path in (REPO / "results").glob("*.md"):
        from pathscan import machine_paths

        assert machine_paths(path) == [], path.name
    if stale:
        pytest.skip(f"results/{', results/'.join(stale)} predate(s) the portable runner (issue #15): "
                    "regenerate with `make reproduce` / `PROFILE=fashion make reproduce`")


def test_finish_executed_makes_a_copy_portable(tmp_path):
    out = REPO / "results" / "smoke" / "notebooks"
    source = NOTEBOOKS[3]
    doc = _doc(source)
    doc["metadata"]["papermill"] = {"input_path": str(source), "output_path": "x",
                                    "parameters": {"profile": "smoke"}}
    tmp = tmp_path / "x.tmp.ipynb"
    tmp.write_text(json.dumps(doc))
    reproduce.finish_executed(str(tmp), source=str(source), profile="smoke", wall_s=12.4)
    done = _doc(tmp)
    assert done["metadata"]["papermill"]["input_path"] == f"notebooks/{source.name}"
    assert done["metadata"]["brcd"]["profile"] == "smoke"
    header = _text(done["cells"][0])
    assert "Wall time of this run: 12 s (profile smoke" in header
    # links of a copy under results/ are rewritten relative to it when it lives in the repo
    fixed = reproduce._rewrite_links("[m](../docs/method.md) [n](05_x.ipynb)",
                                     str(REPO / "notebooks"), str(out))
    assert fixed == "[m](../../../docs/method.md) [n](05_x.ipynb)"
    assert reproduce._rewrite_links("[m](../docs/method.md)", str(REPO / "notebooks"),
                                    str(tmp_path)) == "[m](../docs/method.md)"


# ---------------------------------------------------------------- preflight
@pytest.fixture
def no_fashion_data(tmp_path, monkeypatch):
    """Fashion-MNIST absent everywhere, and any download attempt fails the test."""
    from brcd_lib.data import fashion_mnist

    monkeypatch.setattr(fashion_mnist, "SYSTEM_ROOT", tmp_path / "system")
    monkeypatch.setenv("BRCD_DATA", str(tmp_path / "data"))
    monkeypatch.delenv("BRCD_DOWNLOAD", raising=False)

    def no_download(target):
        raise AssertionError(f"a download was attempted into {target}")

    monkeypatch.setattr(fashion_mnist, "_torchvision_download", no_download)
    return tmp_path


def test_missing_data_is_one_message_with_the_fix(no_fashion_data):
    from brcd_lib.experiments.preflight import ProfileNotReady, require_profile
    from brcd_lib.reporting.notebook import setup

    with pytest.raises(ProfileNotReady) as err:
        setup("fashion", str(no_fashion_data / "results"))
    message = str(err.value)
    assert "dataset fashion_mnist" in message and "apt-get install dataset-fashion-mnist" in message
    assert "BRCD_DOWNLOAD=1" in message
    assert err.value._render_traceback_() == [f"ProfileNotReady: {message}"]  # no traceback
    assert not (no_fashion_data / "results").exists()
    assert require_profile("fashion", download=True).notes  # asked for: a note, no problem


def test_runner_checks_the_profile_before_anything_runs(no_fashion_data, capsys):
    rc = reproduce.main(["--profile", "fashion", "--results-root", str(no_fashion_data / "r")])
    err = capsys.readouterr().err
    assert rc == 2 and "apt-get install dataset-fashion-mnist" in err and "Traceback" not in err
    assert not (no_fashion_data / "r").exists()


def test_paper_profile_says_it_needs_a_gpu_and_the_data(tmp_path, monkeypatch, capsys):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setenv("BRCD_DATA", str(tmp_path / "data"))
    rc = reproduce.main(["--profile", "paper", "--results-root", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert rc == 2
    assert "a CUDA GPU" in err and "dataset cifar10" in err and "ImageNet weights" in err
    assert not (tmp_path / "r").exists()


# ---------------------------------------------------------------- display
def test_tables_format_integers_rounding_missing_and_bold():
    from brcd_lib.reporting.display import Table, format_frame, table_html, table_markdown

    frame = pd.DataFrame({"K": [2.0, 10.0], "throughput": [1009.478, 96.25],
                          "map": [0.41421, np.nan], "cell": ["**0.6000 ± 0.1000**", "0.5"],
                          "count": [1, 3]})
    cells = format_frame(frame)
    assert list(cells["K"]) == ["2", "10"]
    assert list(cells["throughput"]) == ["1009", "96"]
    assert list(cells["map"]) == ["0.4142", "—"]
    assert list(cells["count"]) == ["1", "3"]
    html = table_html(frame)
    assert "<strong>0.6000 ± 0.1000</strong>" in html and "**" not in html
    assert "<th></th>" not in html  # no index column
    assert "| **0.6000 ± 0.1000** |" in table_markdown(frame).replace("  ", " ")
    assert Table(frame.iloc[:0])._repr_html_() is None  # empty tables show nothing
    indexed = pd.DataFrame({"n": [1, 2]}, index=pd.Index(["a", "b"], name="variant"))
    assert list(format_frame(indexed).columns) == ["variant", "n"]  # a named index is kept


def test_write_frame_markdown_uses_the_same_rules(tmp_path):
    from brcd_lib.reporting.tables import write_frame

    write_frame(pd.DataFrame({"K": [2.0], "std": [np.nan]}), str(tmp_path / "t.csv"))
    md = (tmp_path / "t.md").read_text()
    assert "2.0000" not in md and "nan" not in md.lower() and "—" in md


def test_figures_display_as_the_written_png(tmp_path):
    from matplotlib.figure import Figure

    from brcd_lib.reporting.outputs import Outputs

    out = Outputs(results_root=str(tmp_path), profile="p")
    fig = Figure()
    fig.add_subplot().plot([0, 1], [1, 0])
    saved = out.figure(fig, "line")
    assert saved._repr_png_() == (tmp_path / "p" / "figures" / "line.png").read_bytes()
    assert repr(saved) == "<figure figures/line.png>"


def test_the_kit_leaves_the_matplotlib_backend_alone():
    code = ("import matplotlib; import brcd_lib.reporting.notebook, brcd_lib.reporting.outputs; "
            "print(matplotlib.get_backend())")
    env = dict(os.environ, MPLBACKEND="svg", PYTHONPATH=str(REPO))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "svg"


# ---------------------------------------------------------------- report
def _profile():
    from brcd_lib.experiments.profiles import get_profile

    return get_profile("smoke")


def test_report_refuses_an_empty_results_folder(tmp_path):
    from brcd_lib.reporting.report import NothingToReport, write_profile_report

    with pytest.raises(NothingToReport, match="python -m brcd_lib.reproduce --profile smoke"):
        write_profile_report(str(tmp_path), profile=_profile())
    assert not (tmp_path / "README.md").exists()


def test_report_has_contents_flags_missing_notebooks_and_links_only_what_exists(tmp_path):
    from brcd_lib.reporting.report import anchor, missing_notebooks, write_profile_report

    (tmp_path / "tables").mkdir()
    (tmp_path / "figures").mkdir()
    pd.DataFrame({"split": ["train"], "expected": [10.0], "observed": [10]}).to_csv(
        tmp_path / "tables" / "data_splits.csv", index=False)
    pd.DataFrame({"split": ["train"]}).iloc[:0].to_csv(
        tmp_path / "tables" / "data_label_distribution.csv", index=False)
    (tmp_path / "figures" / "data_samples.png").write_bytes(b"png")
    report = Path(write_profile_report(str(tmp_path), profile=_profile())).read_text()
    assert "## Contents" in report
    for title in re.findall(r"^## (.+)$", report, re.M):
        if title != "Contents":  # a contents entry and an explicit anchor (GitHub and Lab)
            assert f"(#{anchor(title)})" in report and f'<a id="{anchor(title)}"></a>' in report
    assert "**Incomplete:**" in report and "--only 01 02 03" in report
    assert "01_data_protocols" in missing_notebooks(str(tmp_path))  # a figure is missing
    assert "### Images per class and split" not in report  # empty table left out
    assert "### Split sizes" in report  # subheadings in words, not file names
    assert "| train | 10 | 10 |" in re.sub(r" +", " ", report)
    for target in re.findall(r"\]\(([^)#\s]+)\)", report):
        assert (tmp_path / target).exists(), target


# ---------------------------------------------------------------- progress
def test_progress_bars_name_the_run_and_go_to_the_runners_terminal(tmp_path, monkeypatch):
    from brcd_lib.training import progress

    assert progress.run_label({"method": "brcd", "bits": 16, "seed": 0}) == "brcd 16 bits seed 0"
    assert progress.run_label(("alpha", 0.5, {"variant": "alpha=0.5", "bits": 16, "seed": 1})) \
        == "alpha 0.5 alpha=0.5 16 bits seed 1"
    assert progress.run_label(3) is None
    sink = tmp_path / "tty"
    monkeypatch.setenv(progress.ENV_PROGRESS_TO, str(sink))
    assert progress.destination() == "file"
    for _ in progress.tqdm([{"method": "kd", "bits": 32, "seed": 2}], desc="main grid"):
        pass
    progress._stream(str(sink)).close()
    progress._stream.cache_clear()
    text = sink.read_text()
    assert "main grid" in text and "kd 32 bits seed 2" in text and "1/1" in text
    monkeypatch.delenv(progress.ENV_PROGRESS_TO)
    assert progress.destination() == "stderr"  # not in a kernel


def test_the_kit_never_imports_tqdm_auto_outside_the_models_layer():
    """tqdm.auto warns in a kernel without ipywidgets; the kit's bars come from
    training.progress (models/pretrain.py is routed there by notebook.setup)."""
    offenders = [str(p.relative_to(REPO)) for p in (REPO / "brcd_lib").rglob("*.py")
                 if "from tqdm.auto import" in p.read_text() and "models" not in p.parts]
    assert offenders == []


def test_lab_dependencies_are_declared():
    pyproject = (REPO / "pyproject.toml").read_text()
    lab = re.search(r"^lab = \[(.*)\]", pyproject, re.M).group(1)
    dev = re.search(r"^dev = \[(.*)\]", pyproject, re.M).group(1)
    assert "jupyterlab" in lab and "ipywidgets" in lab and "nbstripout" in lab
    assert "playwright" in dev
    assert "apt-get install -y -qq chromium" in (REPO / ".ci" / "run").read_text()


def test_worker_processes_log_to_stdout_not_the_kernels_stderr():
    """A worker inherits the kernel's stderr (a red block in Lab and in executed notebooks)."""
    code = ("import logging\nfrom brcd_lib.training import parallel\n"
            "parallel._init_worker(None, ())\nlogging.getLogger('x').warning('a note')\n")
    proc = subprocess.run([sys.executable, "-c", code], env=dict(os.environ, PYTHONPATH=str(REPO)),
                          capture_output=True, text=True, check=True)
    assert "WARNING x: a note" in proc.stdout and "a note" not in proc.stderr


def test_report_requires_what_the_profile_runs(tmp_path):
    """The backbone-pairs and teacher-seed outputs are optional only for profiles that do not run
    them: a fashion folder without its pairs tables is incomplete, a mosaic one is not."""
    from brcd_lib.experiments.profiles import get_profile
    from brcd_lib.reporting.report import MANIFEST, missing_notebooks, optional_outputs

    (tmp_path / "tables").mkdir()
    (tmp_path / "figures").mkdir()
    opt_t, opt_f = optional_outputs(None)
    for _, _, tabs, figs in MANIFEST:  # every required output, none of the optional ones
        for name in tabs:
            if name not in opt_t:
                (tmp_path / "tables" / f"{name}.csv").write_text("a\n1\n")
        for name in figs:
            if name not in opt_f:
                (tmp_path / "figures" / f"{name}.png").write_bytes(b"png")
    assert missing_notebooks(str(tmp_path)) == []
    assert missing_notebooks(str(tmp_path), get_profile("mosaic")) == []  # no pairs, no teacher seeds
    assert missing_notebooks(str(tmp_path), get_profile("fashion")) == ["04_main_results",
                                                                        "06_generality"]
    assert missing_notebooks(str(tmp_path), get_profile("digits")) == ["04_main_results"]


# ---------------------------------------------------------------- issue #27: a clean first hour
def test_python_versions_uncapped_and_ci_runs_the_fast_suite_on_3_13():
    pyproject = (REPO / "pyproject.toml").read_text()
    assert re.search(r'^requires-python = ">=3\.11"$', pyproject, re.M)
    ci = (REPO / ".ci" / "run").read_text()
    main, fast = ci.index("\nmake test\n"), ci.index('make test-fast PYTHON="$PY313"')
    assert main < fast  # the main suite first, then the 3.13 fast suite
    assert "3.13" in ci and "VENV=.venv-py3.13" in ci
    assert "Python 3.11" in (REPO / "README.md").read_text().split("\n## ")[0]
    assert "3.13" in (REPO / "README.md").read_text().split("\n## ")[0]


def test_the_first_import_in_a_kernel_says_it_is_loading():
    """The setup cell prints a line before torch loads (seconds on a busy CPU), not only after."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    run = lambda code: subprocess.run([sys.executable, "-c", code], env=env,  # noqa: E731
                                      capture_output=True, text=True, check=True).stdout
    assert run("import ipykernel, brcd_lib") == "loading brcd_lib (torch, pandas, matplotlib) ...\n"
    assert run("import brcd_lib") == ""  # not in a kernel
    assert run("import ipykernel, torch, brcd_lib") == ""  # torch already loaded


def test_simclr_estimate_reads_in_seconds_minutes_or_hours():
    from brcd_lib.models.pretrain import about

    assert [about(s) for s in (0.4, 9.9, 12, 41, 54, 70, 125, 3000, 5400, 9000)] == [
        "under 10 s", "under 10 s", "about 10 s", "about 40 s", "about 55 s", "about 1 min",
        "about 2 min", "about 50 min", "about 1.5 h", "about 2.5 h"]


def test_a_grid_says_its_collapsed_students_once():
    """Issue #27: one line per grid instead of a warning per collapsed student; on smoke it says
    why collapse is expected, elsewhere what to check; teachers keep their own warning."""
    import logging

    from brcd_lib.experiments.experiment import collapse_summary, held_student_collapses, log
    from brcd_lib.experiments.profiles import get_profile

    rows = [dict(method=m, variant=m, bits=16, seed=0, teacher_seed=0, paradigm=p,
                 warnings="kd 16 bits seed 0: collapsed codes: ..." if m == "kd" else "")
            for m in ("kd", "brcd", "none") for p in ("symmetric", "asymmetric")]
    smoke = collapse_summary(rows, grid="main grid", profile=get_profile("smoke"), n_train=300)
    assert smoke.startswith("main grid: 1 of 3 student runs have collapsed codes")
    assert "kd 16 bits seed 0" in smoke and "Expected on the smoke profile: its students train " \
        "for 10 epochs on 300 training images" in smoke
    digits = collapse_summary(rows, grid="main grid", profile=get_profile("digits"))
    assert digits.endswith("check the learning rate and epochs.")
    assert collapse_summary(rows[2:], grid="g", profile=get_profile("smoke")) is None

    seen = []

    class Keep(logging.Handler):
        def emit(self, record):
            seen.append(record.getMessage())

    keep = Keep()
    log.addHandler(keep)
    try:
        with held_student_collapses():
            log.warning("s", extra={"collapse_role": "student"})
            log.warning("t", extra={"collapse_role": "teacher"})
            log.warning("other")
        log.warning("s2", extra={"collapse_role": "student"})
    finally:
        log.removeHandler(keep)
    assert seen == ["t", "other", "s2"]
