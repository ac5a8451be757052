"""Assemble ``results/<profile>/README.md`` from what the notebooks wrote, and the
``results/README.md`` index. Nothing here computes a number: it embeds the generated files.

The report opens with a table of contents, flags the notebooks whose outputs are missing (with
the command that produces them), links only files that exist and leaves out empty tables. On a
results folder that holds nothing to report, :func:`write_profile_report` raises
:class:`NothingToReport` instead of writing a page of dashes.
"""
from __future__ import annotations

import glob
import json
import os
import re

import pandas as pd

from ..experiments import plan
from ..io import atomic_write_text
from .convergence import CAP_SHARE, TARGET_SHARE, convergence_table
from .display import fit_markdown
from .findings import (CLAIMS_TITLE, FINDINGS_TITLE, claims_frames, claims_markdown,
                       findings_markdown, load_rows)
from .tables import write_frame

# paper artefact -> (notebook, table stems, figure stems)
MANIFEST = [
    ("Protocols and split sizes", "01_data_protocols",
     ["data_splits", "data_label_distribution"], ["data_samples", "data_label_distribution"]),
    ("Main table: teacher row, LSH/ITQ reference rows", "02_teachers", ["teachers"],
     ["teacher_training_curves"]),
    ("k-means elbow, cluster purity, mask statistics", "03_clusters_masks",
     ["kmeans_elbow", "mask_overview", "mask_statistics"], ["kmeans_elbow", "mask_kept_bits"]),
    ("Main table (all methods, both paradigms)", "04_main_results",
     ["main_table", "main_paired_differences", "teacher_seeds_table",
      "teacher_seeds_paired_differences", "upstream_baselines_table",
      "upstream_baselines_paired_differences"],
     ["main_results", "main_paired_differences", "learning_curves"]),
    ("Ablation table", "05_ablations",
     ["ablation_table", "ablation_paired_differences", "ablation_kept_bit_fraction"],
     ["ablations", "ablation_paired_differences"]),
    ("Generality (hashing models, backbones)", "06_generality",
     ["generality_table", "pairs_table", "pairs_paired_differences", "ladder_table"],
     ["generality", "pairs", "ladder"]),
    ("Bit-level redundancy analysis, offset positives", "07_bit_redundancy",
     ["offset_positive_rates"], ["cluster_bit_means", "redundancy_vs_delta", "offset_positive_rates",
                                 "bit_flip_rates", "bit_balance", "bit_correlation_teacher",
                                 "bit_correlation_student_no_KD", "bit_correlation_student_BRCD"]),
    ("Hyper-parameter sensitivity (alpha, delta, K)", "08_sensitivity", ["sensitivity_table"],
     ["sensitivity"]),
    ("Efficiency (parameters, FLOPs, latency)", "09_efficiency",
     ["efficiency_profile_models", "efficiency_paper_backbones"], ["map_vs_latency"]),
    ("t-SNE, PR and P@K curves, case study", "10_qualitative", ["precision_radius2"],
     ["tsne_codes", "pr_curves", "precision_at_k", "case_study"]),
]

SEED_SD = "mean ± seed standard deviation over the seeds of each cell (not an interval)"
RAW_CI = ("mean paired difference over n units (seeds; teacher seeds where named) with its raw "
          "95 % t-interval (low, high), not adjusted for the number of lines: the claims section "
          "adjusts")
FIG_CI = "error bars: 95 % t-interval of the mean over seeds (the title gives the count)"

#: stem -> (title in words, caption): the report's subheadings and what each table or figure
#: shows, with what its ± or its error bars are
TITLES = {
    # tables
    "data_splits": ("Split sizes", "images per split: expected by the protocol and observed"),
    "data_label_distribution": ("Images per class and split",
                                "count of images carrying each class (a multi-label image counts "
                                "once per class)"),
    "teachers": ("Teacher and shallow reference rows",
                 "test mAP@K of the teacher and of LSH / ITQ on raw pixels (one run each)"),
    "kmeans_elbow": ("k-means on the teacher's codes", "inertia and silhouette against K"),
    "mask_overview": ("Bit masks: overview", "kept bits per rule, cluster purity"),
    "mask_statistics": ("Bit masks per cluster", "kept bits and kept fraction per cluster"),
    "main_table": ("Main table", f"test mAP@K, {SEED_SD}; bold = best student per column"),
    "main_paired_differences": ("BRCD minus each method, per code length and pooled",
                                RAW_CI + "; pooled lines: per-seed means over the code lengths"),
    "teacher_seeds_table": ("Teacher seeds: BRCD, KD and no KD under each teacher",
                            f"test mAP@K per teacher seed, {SEED_SD} (student seeds)"),
    "teacher_seeds_paired_differences": ("Teacher seeds: BRCD minus KD and minus no KD",
                                         RAW_CI + "; unit: the teacher seed (mean over its "
                                                  "student seeds)"),
    "upstream_baselines_table": ("Contrastive baselines with class-based negatives",
                                 f"test mAP@K, {SEED_SD}"),
    "upstream_baselines_paired_differences": ("Class-based minus uniform negatives", RAW_CI),
    "ablation_table": ("Ablations", f"test mAP@K, {SEED_SD}"),
    "ablation_paired_differences": ("BRCD minus each ablation", RAW_CI),
    "ablation_kept_bit_fraction": ("Kept-bit fraction per ablation variant",
                                   "mean fraction of bits the masks keep"),
    "generality_table": ("Hashing models", f"test mAP@K, {SEED_SD}"),
    "pairs_table": ("Backbone pairs", f"test mAP@K, {SEED_SD}; parameters and batch-1 latency"),
    "pairs_paired_differences": ("Backbone pairs: BRCD minus KD and minus no KD", RAW_CI),
    "ladder_table": ("Capacity ladder: BRCD against the teacher - student gap",
                     "test mAP@K, mean over seeds; BRCD - KD and the share of the teacher - no-KD "
                     "gap BRCD closes, each with its raw 95 % paired t-interval over seeds"),
    "convergence": ("Did the runs converge?",
                    "trained runs (each once), those whose best epoch came before 80 % of their "
                    "epoch cap, and their median best epoch and epochs run"),
    "offset_positive_rates": ("Offset positives", "share of augmented views whose teacher code "
                                                  "moves to another cluster"),
    "sensitivity_table": ("Sensitivity to alpha, delta and K",
                          "test mAP@K: mean and std = seed standard deviation over the seeds"),
    "efficiency_profile_models": ("Efficiency of the profile's models",
                                  "parameters, multiply-adds, latency and throughput on this CPU"),
    "efficiency_paper_backbones": ("Efficiency of the paper's backbones",
                                   "parameters (hash heads included), FLOPs and latency on this CPU"),
    "precision_radius2": ("Precision within Hamming radius 2",
                          "one seed of each student (the qualitative notebook's runs)"),
    # figures
    "data_samples": ("Sample images", "the first images of each class"),
    "teacher_training_curves": ("Teacher training curves", "validation mAP@K per epoch"),
    "mask_kept_bits": ("Kept bits per cluster", "count of consistent bits per cluster and rule"),
    "main_results": ("Students per method", "test mAP@K, mean over seeds; " + FIG_CI),
    "ablations": ("Ablations per variant", "test mAP@K, mean over seeds; " + FIG_CI),
    "generality": ("Hashing models per method", "test mAP@K, mean over seeds; " + FIG_CI
                   + "; hollow markers: cells with collapsed runs"),
    "pairs": ("Backbone pairs per method", "test mAP@K, mean over seeds; " + FIG_CI
              + "; teacher and LSH as reference lines"),
    "ladder": ("Capacity ladder", "BRCD - KD and the share of the gap BRCD closes against the "
                                  "teacher - no-KD gap of each student backbone; error bars: 95 % "
                                  "paired t-intervals over seeds"),
    "learning_curves": ("Learning curves", "validation mAP@K of no KD, KD and BRCD at the study "
                                          "code length, one line per seed; dot = the kept epoch"),
    "cluster_bit_means": ("Per-cluster bit means", "mean of each teacher bit per cluster"),
    "redundancy_vs_delta": ("Redundancy bits against delta", "redundancy bits per cluster"),
    "bit_flip_rates": ("Bit flips under augmentation", "per-bit flip rate, one seed"),
    "bit_balance": ("Bit balance", "fraction of +1 per bit on the database, one seed"),
    "bit_correlation_teacher": ("Bit correlation: teacher", "Pearson correlation between bits"),
    "bit_correlation_student_no_KD": ("Bit correlation: student without KD",
                                      "Pearson correlation between bits, one seed"),
    "bit_correlation_student_BRCD": ("Bit correlation: BRCD student",
                                     "Pearson correlation between bits, one seed"),
    "sensitivity": ("Sensitivity curves", "test mAP@K, mean over seeds; " + FIG_CI),
    "map_vs_latency": ("mAP against query latency",
                       "students: mean over seeds with 95 % t-intervals; teacher: one run"),
    "tsne_codes": ("t-SNE of the codes", "one seed; colour = class (multi-label: the rarest "
                                         "class of the item)"),
    "pr_curves": ("Precision-recall curves", "one seed; precision over the queries that "
                                             "retrieve at least one item"),
    "precision_at_k": ("Precision at K", "one seed"),
    "case_study": ("Retrieval case study", "top 10 of a few test queries; green = relevant"),
}


def title_of(stem: str) -> str:
    """The words a report subheading uses for a table or figure stem (the stem's words where the
    stem has no title)."""
    return TITLES.get(stem, (stem.replace("_", " ").capitalize(), ""))[0]


def caption_of(stem: str) -> str:
    """What a table or figure shows, with what its ± or error bars are ("" where not titled)."""
    return TITLES.get(stem, ("", ""))[1]


#: tables and figures a notebook writes only in some profiles (09 measures the paper backbones
#: off `smoke`; 05's kept-bit fractions need a method that reports them; 04's teacher-seed grid
#: needs `teacher_seeds`; 06's backbone pairs need `student_backbones` / `teacher_backbones`).
#: Without a profile every one of them is optional; :func:`optional_outputs` narrows the set to
#: what the profile does not run.
OPTIONAL_TABLES = {"efficiency_paper_backbones", "ablation_kept_bit_fraction", "teacher_seeds_table",
                   "teacher_seeds_paired_differences", "pairs_table", "pairs_paired_differences",
                   "ladder_table"}
OPTIONAL_FIGURES = {"pairs", "ladder"}


def optional_outputs(profile=None) -> tuple[set[str], set[str]]:
    """(tables, figures) that may be absent from a complete results folder of ``profile``: the
    teacher-seed tables only where the profile's plan has no teacher-seed grid, the
    backbone-pairs outputs only where it has no backbone pairs (asked of
    :mod:`brcd_lib.experiments.plan`, which the notebooks' grids come from); ``None``: every
    optional output."""
    tables, figures = set(OPTIONAL_TABLES), set(OPTIONAL_FIGURES)
    if profile is None:
        return tables, figures
    if plan.teacher_seed_jobs(profile):
        tables -= {"teacher_seeds_table", "teacher_seeds_paired_differences"}
    if plan.pair_models(profile):
        tables -= {"pairs_table", "pairs_paired_differences"}
        figures -= {"pairs"}
    if plan.ladder_models(profile):
        tables -= {"ladder_table"}
        figures -= {"ladder"}
    return tables, figures


class NothingToReport(RuntimeError):
    """The results folder holds no output of the notebooks the report gathers."""

    def _render_traceback_(self) -> list[str]:
        return [f"{type(self).__name__}: {self}"]


def anchor(title: str) -> str:
    """The fragment of a section: the slug GitHub gives its heading (lower case, punctuation
    dropped, spaces -> '-'). Each section also carries it as an explicit ``<a id>``, because
    JupyterLab's Markdown Preview names headings differently (case and punctuation kept)."""
    slug = re.sub(r"[^\w\- ]", "", title.strip().lower())
    return slug.replace(" ", "-")


def _heading(title: str) -> list[str]:
    return [f'<a id="{anchor(title)}"></a>', "", f"## {title}"]


def _table(path: str) -> pd.DataFrame | None:
    try:
        frame = pd.read_csv(path)
    except (OSError, pd.errors.EmptyDataError):
        return None
    return frame


def status(root: str, profile=None) -> pd.DataFrame:
    """One row per notebook of :data:`MANIFEST`: its outputs present under ``root`` and whether
    it counts as ``missing`` (none of its tables or figures), ``partial`` or ``ok``; with the
    run log's status where there is one. With ``profile``, an output the profile runs is
    required even where another profile may lack it (:func:`optional_outputs`)."""
    run_log = _run_log(root)
    opt_tables, opt_figures = optional_outputs(profile)
    rows = []
    for what, nb, tabs, figs in MANIFEST:
        have_t = [s for s in tabs if os.path.exists(os.path.join(root, "tables", f"{s}.csv"))]
        have_f = [s for s in figs if os.path.exists(os.path.join(root, "figures", f"{s}.png"))]
        complete = (all(s in have_t for s in tabs if s not in opt_tables)
                    and all(s in have_f for s in figs if s not in opt_figures))
        if not (have_t or have_f):
            state = "missing"
        elif complete:
            state = "ok"
        else:
            state = "partial"
        logged = run_log.get("notebooks", {}).get(f"{nb}.ipynb", {}).get("status")
        if logged and logged != "ok":
            state = f"{state} (last run {logged})"
        rows.append({"notebook": nb, "artefact": what, "state": state,
                     "tables": len(have_t), "figures": len(have_f)})
    return pd.DataFrame(rows)


def _run_log(root: str) -> dict:
    path = os.path.join(root, "run_log.json")
    if not os.path.exists(path):
        return {}
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def missing_notebooks(root: str, profile=None) -> list[str]:
    """Notebooks of :data:`MANIFEST` whose outputs are not (all) under ``root`` (``profile``:
    as in :func:`status`)."""
    table = status(root, profile)
    return list(table.loc[table["state"] != "ok", "notebook"])


def _key_columns(frame: pd.DataFrame) -> int:
    """How many leading text columns label a table's rows (repeated when it is split)."""
    keys = 0
    for col in frame.columns:
        if frame[col].dtype == object and keys < 3 and not frame[col].astype(str).str.contains("±").any():
            keys += 1
        else:
            break
    return max(1, keys)


CLAIMS_TABLES = {"claims": "claims", "overall": "claims_overall", "premise": "claims_premise",
                 "key_lines": "claims_key_lines"}


def write_claims_tables(root: str, *, rows=None) -> dict[str, pd.DataFrame]:
    """Compute the claims of ``root`` and write them as ``tables/claims.csv`` (one row per line),
    ``claims_overall.csv``, ``claims_premise.csv`` and ``claims_key_lines.csv`` (with Markdown
    copies); returns the tables as read back from those files, which the report renders."""
    frames = claims_frames(root, rows=rows)
    out = {}
    for key, stem in CLAIMS_TABLES.items():
        path = os.path.join(root, "tables", f"{stem}.csv")
        write_frame(frames[key], path)
        try:
            back = pd.read_csv(path, dtype={"code_length": str})
        except pd.errors.EmptyDataError:
            back = frames[key]
        out[key] = back
    return out


def write_convergence_table(root: str, *, rows) -> pd.DataFrame:
    """``tables/convergence.csv`` (and Markdown): per study and role, and over all studies, the
    trained runs whose best epoch came before 80 % of their cap
    (:func:`brcd_lib.reporting.convergence.convergence_table`); returns it as read back."""
    frame = convergence_table(rows)
    path = os.path.join(root, "tables", "convergence.csv")
    write_frame(frame, path)
    try:
        return pd.read_csv(path)
    except pd.errors.EmptyDataError:
        return frame


def _convergence_markdown(frame: pd.DataFrame) -> list[str]:
    if frame.empty:
        return ["No trained run of this folder records its epochs (rows written before the "
                "`best_epoch` / `max_epochs` columns existed).", ""]
    every = frame[(frame["study"] == "all studies") & (frame["role"] == "all")]
    lines = []
    if len(every):
        r = every.iloc[0]
        met = "met" if r["share"] >= TARGET_SHARE else "not met"
        lines += [f"{int(r['inside'])} of {int(r['runs'])} trained runs ({100 * r['share']:.1f} %) "
                  f"kept a best epoch before {int(100 * CAP_SHARE)} % of their epoch cap "
                  f"(target: at least {int(100 * TARGET_SHARE)} %: {met}).", ""]
    lines += [f"*{caption_of('convergence')}* (`tables/convergence.csv`)", "",
              fit_markdown(frame, keys=2), ""]
    return lines


def provenance_lines(run_log: dict) -> list[str]:
    """The report's provenance section from ``run_log.json``: the last run's commit, device and
    versions, and per notebook its status, wall time, the commit it ran at and how many runs the
    cache held when it started (a notebook rerun alone, e.g. the report, shows its own commit)."""
    lines = _heading("Provenance") + ["",
             f"- commit of the last notebook run: `{run_log.get('commit', 'unknown')}`",
             f"- device: {run_log.get('device', 'unknown')}",
             f"- versions: {run_log.get('versions', 'unknown')}",
             f"- finished: {run_log.get('timestamp', 'unknown')}", "",
             "| notebook | status | wall time (s) | commit | runs cached before |",
             "|---|---|--:|---|--:|"]
    total = 0.0
    for nb, entry in sorted(run_log.get("notebooks", {}).items()):
        wall, cached = entry.get("wall_s"), entry.get("runs_cached_before")
        lines.append(f"| {nb} | {entry.get('status')} | "
                     f"{'—' if wall is None else f'{float(wall):.0f}'} | "
                     f"{entry.get('commit') or '—'} | {'—' if cached is None else cached} |")
        total += float(wall or 0)
    return lines + [f"| **total** | | {total:.0f} | | |", "",
                    "(`python -m brcd_lib.reproduce` rewrites this section from `run_log.json` "
                    "after its last notebook; notebook 11 run on its own, e.g. in Lab, shows its "
                    "own line as of the previous run.)", ""]


def refresh_provenance(root: str) -> list[str]:
    """After a runner's last notebook: rewrite the provenance section of ``<root>/README.md``
    (between its anchor and the next section's) and ``<results root>/README.md`` from the
    finished ``run_log.json``, which notebook 11 could only read before its own entry was
    written. Returns the paths rewritten (none when there is no report or run log yet)."""
    run_log, path, done = _run_log(root), os.path.join(root, "README.md"), []
    if not run_log or not os.path.exists(path):
        return done
    with open(path, encoding="utf-8") as fh:
        text = fh.read()
    head = f'<a id="{anchor("Provenance")}"></a>'
    if head in text:
        before, rest = text.split(head, 1)
        nxt = rest.find('<a id="')
        after = rest[nxt:] if nxt >= 0 else ""
        atomic_write_text(path, before + "\n".join(provenance_lines(run_log)) + "\n" + after)
        done.append(path)
    index = os.path.join(os.path.dirname(root), "README.md")
    if os.path.exists(index):
        done.append(write_results_index(os.path.dirname(root)))
    return done


def write_profile_report(root: str, *, profile) -> str:
    """Write ``<root>/README.md`` and return its path; raises :class:`NothingToReport` when no
    notebook has written anything under ``root``."""
    name = profile.name
    tables, figures = os.path.join(root, "tables"), os.path.join(root, "figures")
    state = status(root, profile)
    if (state["state"].str.startswith("missing")).all():
        raise NothingToReport(
            f"results/{name} holds no output of notebooks 01-10 (no table or figure of the "
            f"manifest), so there is nothing to report. Run them first: `python -m "
            f"brcd_lib.reproduce --profile {name}` (it runs 11_report last).")
    run_log = _run_log(root)
    missing = state[state["state"] != "ok"]
    sections = [(what, nb, tabs, figs) for what, nb, tabs, figs in MANIFEST
                if not state.loc[state["notebook"] == nb, "state"].iloc[0].startswith("missing")]
    lines = [f"# Results: profile `{name}`", "", profile.description, "",
             "Every number below was computed by the notebooks in `notebooks/` "
             f"(`python -m brcd_lib.reproduce --profile {name}`); the raw rows with provenance "
             "(commit, config hash, split hash, seed, versions, device) are in `tables/*_rows.csv`.",
             ""]
    if len(missing):
        only = " ".join(nb[:2] for nb in missing["notebook"])
        lines += ["> **Incomplete:** the outputs of " + ", ".join(
            f"`{nb}` ({st})" for nb, st in zip(missing["notebook"], missing["state"]))
            + f" are missing. Run `python -m brcd_lib.reproduce --profile {name} --only {only}`, "
            "then this report again.", ""]
    contents = ([CLAIMS_TITLE, FINDINGS_TITLE, title_of("convergence")]
                + (["Provenance"] if run_log else []) + ["Manifest"]
                + [s[0] for s in sections])
    lines += ["## Contents", ""] + [f"- [{t}](#{anchor(t)})" for t in contents] + [""]
    rows = load_rows(root)
    frames = write_claims_tables(root, rows=rows)
    lines += claims_markdown(root, rows=rows, heading=_heading, profile=profile, frames=frames)
    lines += findings_markdown(root, profile=profile, rows=rows, heading=_heading)
    lines += _heading(title_of("convergence")) + [""]
    lines += _convergence_markdown(write_convergence_table(root, rows=rows))
    if run_log:
        lines += provenance_lines(run_log)
    lines += _heading("Manifest") + ["", "| paper artefact | notebook | tables | figures |",
                                      "|---|---|---|---|"]
    for what, nb, tabs, figs in MANIFEST:
        t = ", ".join(f"[{s}](tables/{s}.md)" for s in tabs if os.path.exists(os.path.join(tables, f"{s}.md")))
        f = ", ".join(f"[{s}](figures/{s}.png)" for s in figs if os.path.exists(os.path.join(figures, f"{s}.png")))
        executed = os.path.exists(os.path.join(root, "notebooks", f"{nb}.ipynb"))
        link = f"[{nb}](notebooks/{nb}.ipynb)" if executed else f"`{nb}` (not run)"
        lines.append(f"| {what} | {link} | {t or '—'} | {f or '—'} |")
    lines.append("")
    for what, nb, tabs, figs in sections:
        lines += _heading(what) + ["", f"Notebook: `notebooks/{nb}.ipynb`", ""]
        for s in tabs:
            frame = _table(os.path.join(tables, f"{s}.csv"))
            if frame is None or frame.shape[0] == 0:
                continue
            caption = caption_of(s)
            lines += [f"### {title_of(s)}", "", *([f"*{caption}* (`tables/{s}.csv`)", ""]
                                                  if caption else []),
                      fit_markdown(frame, keys=_key_columns(frame)), ""]
        for s in figs:
            if os.path.exists(os.path.join(figures, f"{s}.png")):
                caption = caption_of(s)
                lines += [f"![{title_of(s)}](figures/{s}.png)", "",
                          *([f"*{title_of(s)}: {caption}.*", ""] if caption else [])]
    path = os.path.join(root, "README.md")
    atomic_write_text(path, "\n".join(lines) + "\n")
    return path


def settings_status(profile: str, run_log: dict) -> str:
    """Whether a profile's committed results were run with the profile's current settings:
    "current", "older" (the run log's settings differ: rerun the profile to update them) or
    "not recorded" (a run log from before the runner kept the settings)."""
    recorded = run_log.get("settings")
    if recorded is None:
        return "not recorded (an older run: rerun the profile to check)"
    from ..experiments.profiles import list_profiles
    from ..experiments.reproduce import profile_settings

    if profile not in list_profiles():
        return "unknown profile"
    return "current" if recorded == profile_settings(profile) else "older (rerun the profile)"


def write_results_index(results_root: str) -> str:
    """``results/README.md``: one line per profile folder that has a report."""
    lines = ["# Results", "", "Generated by `python -m brcd_lib.reproduce --profile <name>`; "
             "each profile folder holds tables (CSV + Markdown), figures (PNG), the executed "
             "notebooks and `run_log.json` (wall time per notebook, commit, versions, device).", "",
             "| profile | report | notebooks run | total wall time (s) | commit | profile settings |",
             "|---|---|--:|--:|---|---|"]
    for d in sorted(glob.glob(os.path.join(results_root, "*", "README.md"))):
        prof = os.path.basename(os.path.dirname(d))
        log_path = os.path.join(os.path.dirname(d), "run_log.json")
        n, total, log = 0, 0.0, {}
        if os.path.exists(log_path):
            with open(log_path, encoding="utf-8") as fh:
                log = json.load(fh)
            nbs = log.get("notebooks", {})
            n, total = len(nbs), sum(float(e.get("wall_s") or 0) for e in nbs.values())
        lines.append(f"| {prof} | [{prof}/README.md]({prof}/README.md) | {n} | {total:.0f} | "
                     f"{log.get('commit') or 'unknown'} | {settings_status(prof, log)} |")
    verdicts = {}
    for d in sorted(glob.glob(os.path.join(results_root, "*", "README.md"))):
        root = os.path.dirname(d)
        path = os.path.join(root, "tables", "claims_overall.csv")
        if os.path.exists(path):
            overall = pd.read_csv(path)
        elif load_rows(root):
            overall = claims_frames(root)["overall"]
        else:
            continue
        verdicts[os.path.basename(root)] = overall.set_index("claim")["overall"]
    if verdicts:
        table = pd.DataFrame(verdicts).reset_index().rename(columns={"index": "claim"})
        lines += ["", f"## {CLAIMS_TITLE}: one verdict per claim and profile", "",
                  "Each profile's report gives the rule, the premise and every line behind these "
                  "verdicts (its section \"Claims of the paper, checked\").", "",
                  fit_markdown(table), ""]
    bench = os.path.join(results_root, "benchmarks")
    if os.path.isdir(bench):
        lines += ["", "Benchmarks: [benchmarks/](benchmarks/) (speed and memory ratios, CSV + Markdown)."]
    path = os.path.join(results_root, "README.md")
    atomic_write_text(path, "\n".join(lines) + "\n")
    return path
