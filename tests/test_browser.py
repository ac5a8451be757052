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
         f"--LabApp.app_settings_dir={settings}", "--allow-root"],
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


def test_progress_bars_are_live_widgets_in_lab(lab, page):
    """A grid's bar in a JupyterLab kernel: an ipywidgets progress bar naming the run, no
    warning, no stderr block."""
    url, token, root = lab
    cell = ("import sys, time\n"
            f"sys.path.insert(0, {str(REPO)!r})\n"
            "from brcd_lib.training.progress import tqdm\n"
            "for job in tqdm([{'method': 'brcd', 'bits': 16, 'seed': 0}], desc='main grid'):\n"
            "    time.sleep(0.2)")
    nb = {"cells": [{"cell_type": "code", "execution_count": None, "id": "c1", "metadata": {},
                     "outputs": [], "source": cell}],
          "metadata": {"kernelspec": {"name": "brcd-kit", "display_name": "brcd-kit (.venv)",
                                      "language": "python"}},
          "nbformat": 4, "nbformat_minor": 5}
    (root / "progress.ipynb").write_text(json.dumps(nb))
    page.goto(f"{url}/lab/tree/progress.ipynb?reset&token={token}")
    page.wait_for_selector(".jp-NotebookPanel .jp-Cell .cm-content", timeout=TIMEOUT_MS)
    bar = page.locator(".jp-NotebookPanel .jp-OutputArea-output .widget-hprogress, "
                       ".jp-NotebookPanel .jp-OutputArea-output .jupyter-widget-hprogress")
    # run the cell once the kernel is idle; a run sent while the session is still connecting can
    # be dropped by Lab, so it is sent again (the cell is idempotent)
    page.wait_for_selector(".jp-NotebookPanel-toolbar .jp-Notebook-ExecutionIndicator[data-status='idle']",
                           timeout=TIMEOUT_MS)
    page.locator("#jp-main-statusbar").get_by_text("brcd-kit (.venv) | Idle").wait_for(timeout=TIMEOUT_MS)
    for attempt in range(4):
        page.locator(".jp-NotebookPanel .jp-Cell .cm-content").first.click()
        page.keyboard.press("Shift+Enter")
        try:
            bar.first.wait_for(timeout=20_000)
            break
        except sync_api.TimeoutError:
            if attempt == 3:
                raise
    page.wait_for_function(
        "() => document.querySelector('.jp-NotebookPanel .jp-OutputArea').innerText.includes('1/1')",
        timeout=TIMEOUT_MS)
    text = page.locator(".jp-NotebookPanel .jp-OutputArea").first.inner_text().replace("\u2007", " ")
    assert "main grid" in text and "brcd 16 bits seed 0" in text and "Warning" not in text
    assert page.locator('.jp-NotebookPanel [data-mime-type="application/vnd.jupyter.stderr"]').count() == 0
