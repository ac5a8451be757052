"""Did the runs converge? The share of runs whose best epoch came before their budget bound, and
the learning curves of no KD, KD and BRCD.

A run validates every ``eval_every`` epochs, keeps its best checkpoint (per paradigm for a
student) and stops after ``patience`` validations without improvement, or at its cap
(``TrainConfig.epochs``). A run *converged inside its budget* when its last best epoch (the later
of its paradigms' best epochs) lies before :data:`CAP_SHARE` of the cap: the cap did not decide
where it stopped improving. The rows of every grid carry ``best_epoch``, ``epochs_run`` and
``max_epochs`` (:data:`brcd_lib.experiments.rows.TRAINING_COLUMNS`).
"""
from __future__ import annotations

import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ..distill import method_label

__all__ = ["CAP_SHARE", "TARGET_SHARE", "run_lengths", "convergence_table", "learning_curves",
           "learning_curve_figure"]

CAP_SHARE = 0.8     # a best epoch before 80 % of the cap: the cap did not bind
TARGET_SHARE = 0.95  # the share of runs that must converge inside their budget (issue #24)


def run_lengths(rows: pd.DataFrame) -> pd.DataFrame:
    """One line per trained run of ``rows`` (by ``config_hash``; rows without training columns,
    such as LSH / ITQ or rows written before the columns existed, are left out): ``role``
    ("teacher" or "student"), ``method``, ``best_epoch`` (the later of the run's paradigms),
    ``epochs_run``, ``max_epochs`` and ``inside`` (best epoch < CAP_SHARE x cap)."""
    need = {"config_hash", "best_epoch", "epochs_run", "max_epochs"}
    if rows is None or rows.empty or not need <= set(rows.columns):
        return pd.DataFrame(columns=["config_hash", "role", "method", "best_epoch", "epochs_run",
                                     "max_epochs", "inside"])
    ok = rows[(rows["status"] == "ok") if "status" in rows else slice(None)]
    ok = ok.dropna(subset=["best_epoch", "max_epochs"])
    runs = ok.groupby("config_hash", sort=False).agg(
        method=("method", "first"), best_epoch=("best_epoch", "max"),
        epochs_run=("epochs_run", "max"), max_epochs=("max_epochs", "max")).reset_index()
    runs["role"] = ["teacher" if m == "teacher" else "student" for m in runs["method"]]
    runs["inside"] = runs["best_epoch"] < CAP_SHARE * runs["max_epochs"]
    return runs[["config_hash", "role", "method", "best_epoch", "epochs_run", "max_epochs", "inside"]]


def convergence_table(rows_by_study: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Per study and role, and over all studies (each run once): runs, runs whose best epoch came
    before 80 % of the cap (count and share), median best epoch, median epochs run, cap(s)."""
    per, every = [], []
    for study, rows in rows_by_study.items():
        runs = run_lengths(rows)
        if runs.empty:
            continue
        runs = runs.assign(study=study)
        every.append(runs)
        for role, sub in runs.groupby("role", sort=False):
            per.append(_line(study, role, sub))
    if not every:
        return pd.DataFrame(columns=["study", "role", "runs", "inside", "share", "median best epoch",
                                     "median epochs run", "cap"])
    union = pd.concat(every).drop_duplicates("config_hash")
    for role, sub in union.groupby("role", sort=False):
        per.append(_line("all studies", role, sub))
    per.append(_line("all studies", "all", union))
    return pd.DataFrame(per)


def _line(study: str, role: str, runs: pd.DataFrame) -> dict:
    caps = sorted(set(int(c) for c in runs["max_epochs"]))
    return {"study": study, "role": role, "runs": int(len(runs)), "inside": int(runs["inside"].sum()),
            "share": round(float(runs["inside"].mean()), 4),
            "median best epoch": float(runs["best_epoch"].median()),
            "median epochs run": float(runs["epochs_run"].median()),
            "cap": ", ".join(map(str, caps))}


def learning_curves(records: list[tuple[str, dict]]) -> pd.DataFrame:
    """Long frame of validation curves from run records (``(method, record)`` pairs): method,
    bits, seed, epoch, paradigm, validation mAP, training loss, and the run's best epoch in that
    paradigm."""
    out = []
    for method, rec in records:
        best = rec.get("best_epoch") or {}
        for h in rec.get("history") or []:
            for key, value in h.items():
                if not key.startswith("val_"):
                    continue
                paradigm = key[4:]
                out.append({"method": method, "bits": rec["bits"], "seed": rec["seed"],
                            "epoch": h["epoch"], "paradigm": paradigm, "val_map": value,
                            "loss": h.get("loss"), "best_epoch": best.get(paradigm)})
    return pd.DataFrame(out, columns=["method", "bits", "seed", "epoch", "paradigm", "val_map",
                                      "loss", "best_epoch"])


def learning_curve_figure(curves: pd.DataFrame, *, title: str = "Learning curves") -> Figure:
    """Validation mAP against epoch, one panel per paradigm, one colour per method, one thin line
    per seed with a dot at its best (selected) epoch; the teacher-space paradigm of the student
    without KD sits near chance by construction and is drawn all the same."""
    fig = Figure(figsize=(10, 4.2))
    FigureCanvasAgg(fig)
    paradigms = [p for p in ("symmetric", "asymmetric") if p in set(curves["paradigm"])] or ["symmetric"]
    axes = fig.subplots(1, len(paradigms), squeeze=False)[0]
    palette = {"none": "#7f7f7f", "kd": "#1f77b4", "brcd": "#d62728"}
    seeds = curves["seed"].nunique() if not curves.empty else 0
    for ax, paradigm in zip(axes, paradigms):
        sub = curves[curves["paradigm"] == paradigm]
        for method, msub in sub.groupby("method", sort=False):
            color = palette.get(method)
            first = True
            for _, run in msub.groupby("seed"):
                run = run.sort_values("epoch")
                ax.plot(run["epoch"], run["val_map"], lw=1.0, alpha=0.8, color=color,
                        label=method_label(method) if first else None)
                best = run[run["epoch"] == run["best_epoch"]]
                ax.plot(best["epoch"], best["val_map"], "o", ms=3.5, color=color)
                first = False
        ax.set_xlabel("epoch")
        ax.set_ylabel("validation mAP")
        ax.set_title(paradigm, fontsize=10)
        ax.legend(title="method", fontsize=8)
    bits = sorted(set(int(b) for b in curves["bits"])) if not curves.empty else []
    fig.suptitle(f"{title} ({', '.join(map(str, bits))} bits; one line per seed, {seeds} seeds; "
                 "dot = selected epoch)", fontsize=11)
    fig.tight_layout()
    return fig
