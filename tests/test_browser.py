"""JupyterLab in a real browser: the landing page and executed notebooks as a user sees them.

A JupyterLab server (free localhost port, random token, the kit's Lab settings) serves a folder
holding START.md, docs/, notebooks/ and the smoke profile's executed notebooks; headless Chromium
(Debian's /usr/bin/chromium, driven by playwright, fresh user-data-dir) opens them. Figures must
render as <img src="data:image/png...">, tables as HTML with bold best values, and no stderr or
error output may show. Skipped, with the reason, when Chromium or playwright is missing.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from brcd_lib.paths import repo_root

pytestmark = pytest.mark.slow

REPO = repo_root()
CHROMIUM = os.environ.get("BRCD_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run"]
TIMEOUT_MS = 90_000

if not os.path.exists(CHROMIUM):
    pytest.skip(f"no Chromium at {CHROMIUM} (Debian: apt-get install chromium)",
                allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api",
                               reason="the python package playwright is not installed (dev extra)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def lab(smoke_results, tmp_path_factory):
    """(base url, token, served folder) of a JupyterLab server; stopped after the module."""
    tmp = tmp_path_factory.mktemp("lab")
    root = tmp / "root"
    root.mkdir()
    for name in ("START.md", "README.md", "docs", "notebooks"):
        (root / name).symlink_to(REPO / name)
    # a copy, not a link: the server's /files handler serves nothing outside its root
    shutil.copytree(smoke_results, root / "results" / "smoke")
    # the kernel the notebooks name, as `make install` registers it (here: this interpreter)
    spec = tmp / "jupyter" / "kernels" / "brcd-kit"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "brcd-kit (.venv)", "language": "python"}))
    # the kit's Lab settings, plus: render every cell (no windowing) so all outputs are in the DOM
    settings = tmp / "app-settings"
    settings.mkdir()
    overrides = json.loads((REPO / ".jupyter" / "lab-settings" / "overrides.json").read_text())
    overrides["@jupyterlab/notebook-extension:tracker"] = {"windowingMode": "none"}
    overrides["@jupyterlab/apputils-extension:notification"] = {"fetchNews": "false",
                                                               "checkForUpdates": False}
    (settings / "overrides.json").write_text(json.dumps(overrides))
    env = dict(os.environ, JUPYTER_PATH=str(tmp / "jupyter"), JUPYTER_CONFIG_DIR=str(tmp / "cfg"),
               JUPYTER_RUNTIME_DIR=str(tmp / "runtime"),
               JUPYTERLAB_SETTINGS_DIR=str(tmp / "user-settings"),
               JUPYTERLAB_WORKSPACES_DIR=str(tmp / "workspaces"),
               PYTHONPATH=str(REPO), BRCD_RESULTS=str(smoke_results.parent))
    port, token = _free_port(), secrets.token_hex(16)
    log = open(tmp / "lab.log", "w")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1",
         f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
         f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
         f"--LabApp.app_settings_dir={settings}", "--allow-root",
         # as `make lab` runs it (Makefile): the hook that keeps a filtered save out of git status
         "--FileContentsManager.post_save_hook=brcd_lib.provenance.lab_post_save"],
        env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 90
    while True:
        try:
            with urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=5) as r:
                if r.status == 200:
                    break
        except OSError:
            pass
        if proc.poll() is not None or time.time() > deadline:
            proc.kill()
            pytest.fail("JupyterLab did not start:\n" + (tmp / "lab.log").read_text()[-3000:])
        time.sleep(0.5)
    yield url, token, root
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


@pytest.fixture(scope="module")
def page(lab, tmp_path_factory):
    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_api.sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(profile), executable_path=CHROMIUM, headless=True, args=FLAGS)
        try:
            yield context.new_page()
        finally:
            context.close()


def _images_expected(path: Path) -> int:
    doc = json.loads(path.read_text())
    return sum("image/png" in o.get("data", {}) for c in doc["cells"] for o in c.get("outputs", []))


@pytest.mark.parametrize("name", ["07_bit_redundancy", "04_main_results"])
def test_executed_notebook_shows_figures_as_images_and_no_error(lab, page, smoke_results, name):
    url, token, _ = lab
    expected = _images_expected(smoke_results / "notebooks" / f"{name}.ipynb")
    assert expected >= 1
    # ?reset: a fresh workspace holding only this notebook
    page.goto(f"{url}/lab/tree/results/smoke/notebooks/{name}.ipynb?reset&token={token}")
    panel = ".jp-NotebookPanel"
    page.wait_for_selector(f"{panel} .jp-Cell", timeout=TIMEOUT_MS)
    assert page.locator(panel).count() == 1
    page.wait_for_function(
        "n => document.querySelectorAll('.jp-NotebookPanel .jp-OutputArea-output img').length >= n",
        arg=expected, timeout=TIMEOUT_MS)
    images = page.locator(f"{panel} .jp-OutputArea-output img")
    sources = images.evaluate_all("imgs => imgs.map(i => i.getAttribute('src') || '')")
    assert len(sources) == expected
    assert all(s.startswith("data:image/png;base64,") for s in sources)
    page.wait_for_function("() => Array.from(document.querySelectorAll('.jp-NotebookPanel "
                           ".jp-OutputArea-output img')).every(i => i.complete && i.naturalWidth > 0)",
                           timeout=TIMEOUT_MS)
    for bad in ('[data-mime-type="application/vnd.jupyter.stderr"]', ".jp-OutputArea-error"):
        assert page.locator(f"{panel} {bad}").count() == 0, bad
    text = page.locator(f"{panel} .jp-OutputArea").all_inner_texts()
    assert not any("<Figure size" in t or "Warning" in t for t in text)
    if name == "04_main_results":  # the main table: an HTML table, bold best, no literal **
        assert page.locator(f"{panel} .jp-RenderedHTMLCommon table strong").count() >= 1
        assert not any("**" in t for t in text)


def test_landing_page_opens_rendered_and_its_links_open_notebooks(lab, page):
    url, token, _ = lab
    page.goto(f"{url}/lab/tree/START.md?reset&token={token}")
    heading = page.locator(".jp-RenderedMarkdown h1").first
    heading.wait_for(timeout=TIMEOUT_MS)
    assert "start here" in heading.inner_text()
    markdown = page.locator(".jp-RenderedMarkdown").first
    for n in ("01_data_protocols", "11_report"):
        assert markdown.locator(f'a[href*="/notebooks/{n}.ipynb"]').count() == 1
    assert markdown.locator('a[href*="/docs/method.md"]').count() == 1
    markdown.locator('a[href*="/notebooks/01_data_protocols.ipynb"]').click()
    page.wait_for_selector('.lm-TabBar-tab:has-text("01_data_protocols.ipynb")', timeout=TIMEOUT_MS)
    page.wait_for_selector(".jp-NotebookPanel .jp-MarkdownCell h1", timeout=TIMEOUT_MS)
    assert page.locator(".jp-Dialog").count() == 0  # e.g. no "Select Kernel" dialog


def test_profile_report_renders_with_contents_and_images(lab, page, smoke_results):
    url, token, _ = lab
    page.goto(f"{url}/lab/tree/results/smoke/README.md?reset&token={token}")
    markdown = page.locator(".jp-RenderedMarkdown").first
    markdown.locator("h1").wait_for(timeout=TIMEOUT_MS)
    assert "profile smoke" in markdown.locator("h1").inner_text()
    figures = len(list((smoke_results / "figures").glob("*.png")))
    page.wait_for_function(
        "n => { const i = document.querySelectorAll('.jp-RenderedMarkdown img'); return i.length >= n"
        " && Array.from(i).every(x => x.complete && x.naturalWidth > 0); }",
        arg=min(figures, 20), timeout=TIMEOUT_MS)
    assert markdown.locator("table").count() >= 5 and "**" not in markdown.inner_text()
    contents = markdown.locator('a[href^="#"]:not(.jp-InternalAnchorLink)')
    assert contents.count() >= 5
    last = markdown.locator("h2").last
    before = last.bounding_box()["y"]
    contents.last.click()  # the contents entry of the last section scrolls to it
    page.wait_for_timeout(500)
    assert last.bounding_box()["y"] < before


KERNELSPEC = {"name": "brcd-kit", "display_name": "brcd-kit (.venv)", "language": "python"}
WIDGET_ERRORS = ("Error displaying widget", "model not found")


def _wait_for_idle_kernel(page) -> None:
    page.wait_for_selector(".jp-NotebookPanel-toolbar .jp-Notebook-ExecutionIndicator[data-status='idle']",
                           timeout=TIMEOUT_MS)
    page.locator("#jp-main-statusbar").get_by_text("brcd-kit (.venv) | Idle").wait_for(timeout=TIMEOUT_MS)


def _widget_errors(page) -> int:
    """How many outputs of the open notebook say a widget's model is missing."""
    texts = page.locator(".jp-NotebookPanel .jp-OutputArea").all_inner_texts()
    return sum(t.count(WIDGET_ERRORS[0]) + t.count(WIDGET_ERRORS[1]) for t in texts)


def _save(page) -> None:
    page.locator(".jp-NotebookPanel .jp-CodeCell").first.click()
    page.keyboard.press("Control+s")
    page.wait_for_function("() => !document.querySelector('.jp-mod-dirty')", timeout=TIMEOUT_MS)


def test_progress_bars_are_live_widgets_in_lab(lab, page):
    """A grid's bar in a JupyterLab kernel: an ipywidgets progress bar naming the run, no
    warning, no stderr block. Once finished it is text (its inner bars are nothing), so after a
    page reload no output says "Error displaying widget: model not found" and the saved
    notebook holds no widget view (issue #27)."""
    url, token, root = lab
    cell = ("import sys, time\n"
            f"sys.path.insert(0, {str(REPO)!r})\n"
            "from brcd_lib.training.progress import tqdm\n"
            "for job in tqdm([{'method': 'brcd', 'bits': 16, 'seed': 0}], desc='main grid'):\n"
            "    for epoch in tqdm(range(3), desc='brcd 16 bits seed 0', leave=False):\n"
            "        time.sleep(0.3)\n"
            "    time.sleep(1.5)")
    nb = {"cells": [{"cell_type": "code", "execution_count": None, "id": "c1", "metadata": {},
                     "outputs": [], "source": cell}],
          "metadata": {"kernelspec": KERNELSPEC}, "nbformat": 4, "nbformat_minor": 5}
    (root / "progress.ipynb").write_text(json.dumps(nb))
    page.goto(f"{url}/lab/tree/progress.ipynb?reset&token={token}")
    page.wait_for_selector(".jp-NotebookPanel .jp-Cell .cm-content", timeout=TIMEOUT_MS)
    bar = page.locator(".jp-NotebookPanel .jp-OutputArea-output .widget-hprogress, "
                       ".jp-NotebookPanel .jp-OutputArea-output .jupyter-widget-hprogress")
    # run the cell once the kernel is idle; a run sent while the session is still connecting can
    # be dropped by Lab, so it is sent again (the cell is idempotent)
    _wait_for_idle_kernel(page)
    for attempt in range(4):
        page.locator(".jp-NotebookPanel .jp-Cell .cm-content").first.click()
        page.keyboard.press("Shift+Enter")
        try:
            bar.first.wait_for(timeout=20_000)
            break
        except sync_api.TimeoutError:
            if attempt == 3:
                raise
    page.wait_for_function(  # the live widget shows the run it is on
        "() => document.querySelector('.jp-NotebookPanel .jp-OutputArea').innerText"
        ".replace(/\\u2007/g, ' ').includes('brcd 16 bits seed 0')", timeout=TIMEOUT_MS)
    page.wait_for_function(  # finished: the bar's last line, as text
        "() => document.querySelector('.jp-NotebookPanel .jp-OutputArea').innerText.includes('1/1')"
        " && !document.querySelector('.jp-NotebookPanel .jp-OutputArea .widget-hprogress, "
        ".jp-NotebookPanel .jp-OutputArea .jupyter-widget-hprogress')", timeout=TIMEOUT_MS)
    text = page.locator(".jp-NotebookPanel .jp-OutputArea").first.inner_text().replace("\u2007", " ")
    assert "main grid" in text and "brcd 16 bits seed 0" in text and "Warning" not in text
    assert page.locator('.jp-NotebookPanel [data-mime-type="application/vnd.jupyter.stderr"]').count() == 0
    _wait_for_idle_kernel(page)
    _save(page)
    saved = json.loads((root / "progress.ipynb").read_text())
    mimes = [m for o in saved["cells"][0]["outputs"] for m in o.get("data", {})]
    assert "application/vnd.jupyter.widget-view+json" not in mimes, mimes
    page.reload()
    page.wait_for_selector(".jp-NotebookPanel .jp-OutputArea-output", timeout=TIMEOUT_MS)
    page.wait_for_timeout(3000)  # widget views would be rendered (and fail) by now
    assert _widget_errors(page) == 0
    assert "1/1" in page.locator(".jp-NotebookPanel .jp-OutputArea").first.inner_text()


def test_run_all_of_a_smoke_notebook_leaves_no_widget_error_after_a_reload(lab, page, tmp_path):
    """Issue #27: Run All on 04_main_results (smoke; its runs come from the session's cache),
    then a page reload: no output says "Error displaying widget" or "model not found"."""
    url, token, root = lab
    doc = json.loads((REPO / "notebooks" / "04_main_results.ipynb").read_text())
    params = next(c for c in doc["cells"] if "parameters" in c["metadata"].get("tags", []))
    # the notebook's own parameters (every name the later cells read), then the test's values
    params["source"] = "".join(params["source"]).rstrip("\n") + (
        f"\nprofile = 'smoke'\nresults_root = {str(tmp_path / 'results')!r}\nprogress = True\n")
    (root / "runall").mkdir(exist_ok=True)
    (root / "runall" / "04_main_results.ipynb").write_text(json.dumps(doc))
    page.goto(f"{url}/lab/tree/runall/04_main_results.ipynb?reset&token={token}")
    page.wait_for_selector(".jp-NotebookPanel .jp-CodeCell .cm-content", timeout=TIMEOUT_MS)
    _wait_for_idle_kernel(page)
    page.locator(".jp-NotebookPanel .jp-Cell").first.click()
    page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
    page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()
    n_code = sum(c["cell_type"] == "code" for c in doc["cells"])
    try:
        page.wait_for_function(  # every code cell has run (numbered prompts, none pending) or one failed
            "n => { const p = Array.from(document.querySelectorAll('.jp-NotebookPanel .jp-CodeCell "
            ".jp-InputPrompt')).map(e => e.innerText); return (p.length === n && "
            "p.every(t => /\\[\\d+\\]/.test(t))) || "
            "document.querySelector('.jp-NotebookPanel .jp-OutputArea-error') !== null; }",
            arg=n_code, timeout=600_000)
    except sync_api.TimeoutError:
        pytest.fail("Run All did not finish in 10 min; prompts: " + ", ".join(page.evaluate(
            "Array.from(document.querySelectorAll('.jp-NotebookPanel .jp-CodeCell "
            ".jp-InputPrompt')).map(e => e.innerText)")))
    errors = page.locator(".jp-NotebookPanel .jp-OutputArea-error")
    assert errors.count() == 0, f"a cell failed under Run All:\n{errors.first.inner_text()[-2000:]}"
    errors_before_reload = _widget_errors(page)
    _wait_for_idle_kernel(page)
    _save(page)
    page.reload()
    page.wait_for_selector(".jp-NotebookPanel .jp-OutputArea-output", timeout=TIMEOUT_MS)
    page.wait_for_timeout(3000)
    for button in page.locator(".jp-NotebookPanel .jp-TrimmedOutputs button").all():
        button.click()  # "Show more outputs"
    page.wait_for_timeout(1000)
    print(f"widget errors: {errors_before_reload} after Run All, {_widget_errors(page)} after a "
          "page reload")
    assert (errors_before_reload, _widget_errors(page)) == (0, 0)
    saved = (root / "runall" / "04_main_results.ipynb").read_text()
    assert "application/vnd.jupyter.widget-view+json" not in saved


def test_a_notebook_saved_in_lab_leaves_git_status_clean(lab, page):
    """Issue #27: in a clone whose filter is configured as `make lab` does, a notebook opened
    in Lab (its kernel adds language_info) and saved leaves `git status` clean."""
    url, token, root = lab
    clone = root / "clone"
    (clone / "notebooks").mkdir(parents=True)
    name = "01_data_protocols.ipynb"
    (clone / "notebooks" / name).write_bytes((REPO / "notebooks" / name).read_bytes())
    for kept in (".gitattributes", ".gitignore"):  # as a clone has them
        (clone / kept).write_bytes((REPO / kept).read_bytes())
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"]
    for cmd in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "clone"]):
        subprocess.run(git + cmd, cwd=clone, check=True, capture_output=True)
    dry = subprocess.run(["make", "-n", "-s", "nbstripout", f"VENV={sys.prefix}"], cwd=REPO,
                         capture_output=True, text=True, check=True).stdout
    for line in dry.splitlines():
        if line.startswith("git config"):
            subprocess.run(line, shell=True, cwd=clone, check=True)
    page.goto(f"{url}/lab/tree/clone/notebooks/{name}?reset&token={token}")
    page.wait_for_selector(".jp-NotebookPanel .jp-CodeCell .cm-content", timeout=TIMEOUT_MS)
    _wait_for_idle_kernel(page)
    page.wait_for_timeout(1000)
    _save(page)
    page.wait_for_timeout(2000)  # the post-save hook runs after the file is written
    on_disk = json.loads((clone / "notebooks" / name).read_text())
    assert "language_info" in on_disk["metadata"]  # what Lab adds, kept on disk
    status = subprocess.run(["git", "status", "--porcelain"], cwd=clone, capture_output=True,
                            text=True, check=True).stdout
    print(f"git status after a Lab save: {status!r}")
    assert status == ""
