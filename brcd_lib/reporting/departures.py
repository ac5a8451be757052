"""Every place where the kit departs from the authors' released code, in one registry.

Each :class:`Departure` says what the release does and what the kit does, why, which switch
restores the release (or why none can), and the measured effect (or ``"not measured"``). The
registry :data:`DEPARTURES` is the single source of ``docs/departures.md``:
:func:`render_document` writes the page (``python -m brcd_lib.reporting.departures`` rewrites it) and
``tests/test_departures.py`` checks that the committed page is up to date and that every switch
named here exists.

The release is github.com/hly1998/BRCD (method.md sections 4 and 5); "DeepHash-pytorch" is
github.com/swuxyj/DeepHash-pytorch, whose Bi-half and GreedyHash code the generality study follows.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from ..distill import distiller_class, get_distiller, list_distillers
from ..paths import repo_root

AREAS: tuple[str, ...] = ("brcd", "data", "training", "evaluation", "objectives", "baselines",
                          "engineering")

NOT_MEASURED = "not measured"


@dataclass(frozen=True)
class Departure:
    """One departure from the released code.

    key: a short unique id.
    area: one of :data:`AREAS`.
    release: what the released code does.
    kit: what the kit does by default.
    why: the reason for the kit's choice.
    switch: how to get the released behaviour back (a keyword, option or profile setting), or
        ``"none: <reason>"``.
    effect: the measured effect with where it was measured, or :data:`NOT_MEASURED`.
    docs: where the departure is described in more detail.
    """

    key: str
    area: str
    release: str
    kit: str
    why: str
    switch: str
    effect: str
    docs: str


DEPARTURES: tuple[Departure, ...] = (
    # ------------------------------------------------------------------------------ BRCD
    Departure(
        key="mask_rule", area="brcd",
        release="`get_mask/get_matrix.py` chains two `where` calls: every mask entry becomes 0 for "
                "any margin <= 1 (the released CIFAR-10 mask file is all zeros), so the structural "
                "term and every negative collapse to cosine 0",
        kit="bit j of cluster c is kept when the cluster's mean code has `|m_c[j]| > delta` "
            "(method.md section 3)",
        why="defect 1 of method.md section 4: the released arithmetic cannot be what the paper "
            "describes",
        switch='`BRCDDistiller(mask_rule="upstream")` (ablation variant `upstream_mask`)',
        effect="measured on digits and fashion: rows `upstream_mask` vs `brcd` of "
               "`results/<profile>/tables/ablation_table.md`",
        docs="docs/brcd.md, deviation 1"),
    Departure(
        key="offset_check_unmasked", area="brcd",
        release="the offset-positive check finds the nearest centroid of the *masked* teacher "
                "view-2 code (constant under the all-zero mask)",
        kit="the nearest centroid of the unmasked teacher view-2 code, as method.md section 3 "
            "describes",
        why="defect 4 of method.md section 4",
        switch="none: no option reproduces the masked check",
        effect=NOT_MEASURED,
        docs="docs/brcd.md, deviation 2"),
    Departure(
        key="false_negative_removal", area="brcd",
        release="adds -1000 to the logit of a false negative",
        kit="sets it to -inf (the negative leaves the softmax)",
        why="exact removal; the two differ only by terms of relative weight exp(-1000)",
        switch="none needed",
        effect="measured: equal on the golden inputs within the tolerance of "
               "`tests/test_brcd.py`",
        docs="docs/brcd.md, deviation 3"),
    Departure(
        key="cluster_switches", area="brcd",
        release="three flags (`false_neg`, `revise_distance`, `false_pos`); the `false_neg` branch "
                "alone compares teacher entries by pseudo label",
        kit="`use_cluster` (false negatives by nearest centroid + offset positives) and "
            "`use_mask`, as method.md section 3 describes the method",
        why="the released `false_pos` branch is the method's behaviour; the other branch "
            "combinations are not in the paper",
        switch="`use_mask` = `revise_distance`, `use_cluster` = `false_pos` (which also removes "
               "false negatives); the `false_neg`-only branch has none",
        effect=NOT_MEASURED,
        docs="docs/brcd.md, deviation 4"),
    Departure(
        key="kmeans", area="brcd",
        release="`KMeans(n_clusters, n_init=30, init='k-means++')` without `random_state`, "
                "assignments stored by position in an unseeded training draw",
        kit="seeded `random_state`, pseudo labels indexed by dataset index and cached; "
            "`n_init=10` by default",
        why="reproducible clusters (related to defect 2); fewer restarts are cheaper on the CPU "
            "profiles",
        switch="`n_init=30` (the `paper` profile sets it); the unseeded draw has none",
        effect=NOT_MEASURED,
        docs="docs/brcd.md, deviation 5"),
    # ------------------------------------------------------------------------------ data
    Departure(
        key="training_draw", area="data",
        release="the 5,000-image CIFAR-10 training set and the validation/test cut are drawn "
                "before any seed is set",
        kit="every split is drawn from a seed and saved with its SHA-256",
        why="defect 2 of method.md section 4: the released draw cannot be repeated",
        switch="none: an unseeded draw cannot be reproduced",
        effect=NOT_MEASURED,
        docs="docs/datasets.md"),
    Departure(
        key="validation_split", area="data",
        release="NUS-WIDE, MS-COCO and ImageNet-100 validate on the test queries",
        kit="a seeded held-out validation split of the training list",
        why="defect 3 of method.md section 4: model selection on the test queries",
        switch='`DataConfig(protocol={"validation": "upstream"})`',
        effect=NOT_MEASURED,
        docs="docs/datasets.md"),
    Departure(
        key="nuswide_files", area="data",
        release="NUS-WIDE from `database_img.txt` / `test_img.txt` and one-hot label files, 10,500 "
                "training images drawn from the database without a seed",
        kit="the DeepHash-pytorch list files (`train.txt`, `test.txt`, `database.txt`)",
        why="the common public layout; the released draw is unseeded",
        switch="none: join each image file with its label file into the list format",
        effect=NOT_MEASURED,
        docs="docs/datasets.md"),
    Departure(
        key="cifar10_test_transform", area="data",
        release="CIFAR-10 test images resized straight to 224 x 224",
        kit="Resize(256) + CenterCrop(224), as the list-file datasets",
        why="one test transform for every dataset",
        switch='`DataConfig(test_transform_options={"center_crop": False})` (the `paper` profile '
               "sets it)",
        effect=NOT_MEASURED,
        docs="docs/datasets.md"),
    # ------------------------------------------------------------------------------ training
    Departure(
        key="early_stopping", area="training",
        release="stops when the count of non-improving validations *exceeds* the patience "
                "(`bad_epochs > num_bad_epochs`)",
        kit="stops when the count *reaches* the patience (one validation earlier)",
        why="patience read as the number of non-improving validations tolerated before stopping",
        switch='`TrainConfig(stop_when="exceeds")` (the `paper` profile sets it)',
        effect=NOT_MEASURED,
        docs="brcd_lib/config.py (TrainConfig)"),
    Departure(
        key="feature_bank", area="training",
        release="fresh augmentations through both backbones at every step",
        kit="the CPU profiles train the heads on a cached bank of `feature_views` augmented "
            "views per image (the `paper` profile uses fresh augmentations)",
        why="CPU budget: the frozen backbones' features are computed once",
        switch="`TrainConfig(feature_views=0)`",
        effect="measured: docs/performance.md, cached vs uncached mAP "
               "(`results/benchmarks/cache_map.csv`)",
        docs="docs/performance.md"),
    Departure(
        key="cpu_backbones", area="training",
        release="ImageNet-pretrained backbones, frozen: a ViT-B/16 teacher (768-d features, "
                "linear head) and EfficientNet-B0 / MobileNetV2 students (1000-d outputs, MLP "
                "head 1000 -> 1000 -> L), 224 px images",
        kit="the CPU profiles stand in SimCLR-pretrained CNNs with committed weights, frozen as "
            "released: a 1.2M-parameter ResNet teacher (`resnet_teacher`, linear head) and the "
            "`small_cnn_s` student (MLP head as wide as the teacher's features): width 8 (6k "
            "parameters) on fashion and mosaic, width 4 (1.6k) on digits",
        why="no ImageNet weights offline and a 2-core CPU; on digits the width-8 student came "
            "within 2 seed SDs of the teacher on validation at every code length, and the premise "
            "rule written before that step (`benchmarks/explore_structure.py`, step 3) moves to "
            "the next narrower width",
        switch="the `paper` profile (`--profile paper`: ViT-B/16 and EfficientNet-B0 with "
               "ImageNet weights)",
        effect="measured: `results/benchmarks/structure.md`, step 3 (teacher vs undistilled "
               "student and LSH per width and code length, validation); "
               "`results/benchmarks/explore_standin.md` (the SimCLR recipe)",
        docs="docs/models.md"),
    Departure(
        key="student_epoch_cap", area="training",
        release="students train up to 400 epochs (validation every 10, patience 5)",
        kit="the CPU profiles train students up to 1,000 epochs with the released validation "
            "every 10 epochs and patience of 5 validations, so the cap does not decide where a run "
            "stops (the `paper` profile keeps 400)",
        why="issue #24: every run converges; converged CPU students peak between epochs 30 and "
            "500 (`results/benchmarks/structure.md`, step 3), and a cap that binds compares "
            "methods that stopped at different points of their training",
        switch="`TrainConfig(epochs=400)` (the `paper` profile's schedule)",
        effect="measured: each report's convergence section (`results/<profile>/tables/"
               "convergence.csv`) gives the runs whose best epoch came before 80 % of the cap",
        docs="docs/models.md"),
    Departure(
        key="undistilled_head", area="training",
        release="`model/CIBHash.py` trains the undistilled EfficientNet student with a linear "
                "`1000 -> L` head; the distilled students get the MLP `1000 -> 1000 -> L`",
        kit="the student without KD has the distilled students' head, so the no-KD row differs "
            "from the distilled rows only by the teacher",
        why="with different heads the no-KD baseline would mix the effect of distillation with "
            "the effect of the head",
        switch="`Profile(undistilled_head=\"release\")`",
        effect="measured: `results/benchmarks/structure.md`, step 4 (no KD at 32 bits with "
               "either head, 5 seeds, validation and test)",
        docs="docs/models.md"),
    Departure(
        key="online_views_shared", area="training",
        release="every run draws its own fresh augmentations from its own random stream (views "
                "that differ between runs and between seeds)",
        kit="fresh views at every epoch as released, but each a function of (augmentation seed, "
            "epoch, image, view); with the default `bank_seed=\"split\"` (the `paper` profile) "
            "the augmentation seed is the split seed, so every run of a grid (the teacher and "
            "each student seed) sees the same views at the same epoch, and "
            "each view's features are computed once per frozen backbone and shared (on a GPU "
            "stored in bfloat16, the precision the backbone ran in; the per-run pipeline rounds "
            "them the same way)",
        why="GPU-hours: the paper grid's forward passes fall by orders of magnitude "
            "(`results/benchmarks/gpu_estimate.md`); the seeds still differ in head "
            "initialisation, batch order, k-means and negatives",
        switch='`TrainConfig(bank_seed="run")` draws the views per run seed (5x the forward '
               'passes of 5 seeds)',
        effect=NOT_MEASURED,
        docs="docs/performance.md, brcd_lib/training/views.py"),
    # ------------------------------------------------------------------------------ evaluation
    Departure(
        key="ranking_ties", area="evaluation",
        release="Hamming ranking with NumPy's default (unstable) argsort",
        kit="ties broken by database index (stable sort)",
        why="a deterministic, machine-independent mAP",
        switch="none: the unstable order is not reproducible",
        effect=NOT_MEASURED,
        docs="README.md, brcd_lib/metrics.py"),
    Departure(
        key="sign_of_zero", area="evaluation",
        release="codes with `torch.sign`, which gives 0 for a zero input",
        kit="sign(0) = +1: every code is +-1",
        why="a zero entry is not a bit",
        switch="none",
        effect=NOT_MEASURED,
        docs="docs/models.md"),
    # ------------------------------------------------------------------------------ objectives
    Departure(
        key="cibhash_log_eps", area="objectives",
        release="CIBHash's KL adds 1e-8 inside each logarithm",
        kit="probabilities clamped to [1e-7, 1 - 1e-7] (`prob_eps`)",
        why="finite values and gradients at saturated probabilities",
        switch="none: `prob_eps` changes the clamp, not the released form",
        effect=NOT_MEASURED,
        docs="docs/models.md"),
    Departure(
        key="two_view_hashing_losses", area="objectives",
        release="Bi-half and GreedyHash (DeepHash-pytorch / authors' code) train on one "
                "non-augmented view",
        kit="the loss on each of the kit's two augmented views, averaged; Bi-half's layer gets "
            "gamma / 2 per view so that its term keeps DeepHash-pytorch's weight relative to the MSE",
        why="the kit's training loop always feeds two views",
        switch="none",
        effect=NOT_MEASURED,
        docs="docs/models.md"),
    # ------------------------------------------------------------------------------ baselines
    Departure(
        key="contrastive_negatives", area="baselines",
        release="CRD, CRCD and PACKD draw their 500 negatives from other classes with the training "
                "labels (`cls_negative`, exact mode), without replacement when a class's pool "
                "holds at least 500 items (`np.random.choice(pool, k, replace=k > len(pool))`)",
        kit="uniform over all other training items, with replacement: the baselines stay "
            "unsupervised, like BRCD",
        why="unsupervised hashing uses no labels in training",
        switch='`negatives="class"` (needs `DistillContext.train_labels`)',
        effect="measured by notebook 04's upstream-baselines study: class-based minus uniform "
               "negatives for CRD, CRCD and PACKD, per paradigm, paired by seed "
               "(`results/<profile>/tables/upstream_baselines_paired_differences.md`; each "
               "profile's report quotes its numbers)",
        docs="docs/baselines.md"),
    Departure(
        key="sp_on_codes", area="baselines",
        release="SP's grouped-feature loss receives (B, L) code matrices, so each sample's code is "
                "its own batch of L scalar features (per-sample L x L Gram matrices)",
        kit="the paper's B x B Gram matrix of the batch",
        why="the released call is a shape accident, not the method",
        switch='`variant="upstream"`',
        effect=NOT_MEASURED,
        docs="docs/baselines.md"),
    Departure(
        key="crcd_self_anchor", area="baselines",
        release="keeps the sample-anchor pairs j == b, whose zero positive relation becomes an "
                "arbitrary direction through +1e-6 on every coordinate",
        kit="drops the pairs j == b; any zero relation scores cosine 0",
        why="the released direction is arbitrary",
        switch="`self_anchor=True` keeps the pairs (zero relations still score 0)",
        effect=NOT_MEASURED,
        docs="docs/baselines.md"),
    Departure(
        key="packd_views", area="baselines",
        release="`mixup_num = 1`: one positive pair per image, so the Sinkhorn plan is trivial",
        kit="both augmented views are positives (`views=2`), so the Sinkhorn weighting acts",
        why="PACKD's method is the weighting of several positives",
        switch="`views=1`",
        effect=NOT_MEASURED,
        docs="docs/baselines.md"),
    Departure(
        key="packd_own_row", area="baselines",
        release="the negative layout may include the positive's own bank row",
        kit="negatives exclude the row's own index",
        why="the own row is a positive",
        switch="none",
        effect=NOT_MEASURED,
        docs="docs/baselines.md"),
    Departure(
        key="sskd_ties", area="baselines",
        release="error-level ranking with `argsort`: tied teacher similarities are ordered "
                "arbitrarily",
        kit="ties with the right column count as right, decided exactly on integer dot products "
            "of the +-1 codes",
        why="+-1 codes tie often; the ranking must not depend on the machine",
        switch="none",
        effect="none at the default `keep_wrong_ratio=1.0` (every row is kept whatever its rank)",
        docs="docs/baselines.md"),
    # ------------------------------------------------------------------------------ engineering
    Departure(
        key="checkpoints", area="engineering",
        release="pickles whole modules (`torch.save(self)`) and assumes CUDA",
        kit="state dicts loadable with `torch.load(weights_only=True)`; CPU or CUDA",
        why="safe loading and CPU runs (defect 5 of method.md section 4)",
        switch="none needed: the file format does not change results",
        effect="none on results",
        docs="README.md"),
    Departure(
        key="kd_entry_point", area="engineering",
        release="no entry point for the KD baselines",
        kit="every distiller through `python -m brcd_lib.train` and the notebooks",
        why="defect 5 of method.md section 4",
        switch="none needed",
        effect="none on results",
        docs="README.md"),
)


def departures(area: str | None = None) -> tuple[Departure, ...]:
    """The registered departures, all or those of one ``area`` (ValueError for an unknown one)."""
    if area is None:
        return DEPARTURES
    if area not in AREAS:
        raise ValueError(f"unknown area {area!r}; valid areas: {', '.join(AREAS)}")
    return tuple(d for d in DEPARTURES if d.area == area)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(entries: tuple[Departure, ...] | None = None) -> str:
    """A Markdown table of ``entries`` (default: every departure), one row each."""
    entries = DEPARTURES if entries is None else entries
    head = ["#", "area", "key", "released code", "kit (default)", "why", "switch restoring the release",
            "effect"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for i, d in enumerate(entries, 1):
        cells = [str(i), d.area, f"`{d.key}`", d.release, d.kit, d.why, d.switch, d.effect]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"


def render_distiller_table() -> str:
    """A Markdown table of the registered distillers' metadata, read from the registry: display
    name, family, rotations, and whether the default / ``negatives="class"`` instance reads the
    training labels."""
    lines = ["| name | label | family | needs rotations | reads labels (default) | "
             'reads labels with `negatives="class"` |', "|---|---|---|---|---|---|"]
    for name in list_distillers():
        cls = distiller_class(name)
        try:
            labelled = "yes" if get_distiller(name, negatives="class").reads_labels else "no"
        except TypeError:  # no negatives option
            labelled = "no option"
        lines.append(f"| `{name}` | {cls.label} | {cls.family} | "
                     f"{'yes' if cls.needs_rotations else 'no'} | "
                     f"{'yes' if get_distiller(name).reads_labels else 'no'} | {labelled} |")
    return "\n".join(lines) + "\n"


HEADER = """# Departures from the released code

Generated by `python -m brcd_lib.reporting.departures` from the registry in `brcd_lib/reporting/departures.py`; do not
edit by hand (`tests/test_departures.py` fails when this page and the registry differ). The
released code is github.com/hly1998/BRCD; method.md sections 4 and 5 describe its defects and
settings. "switch" is how to get the released behaviour back; "effect" is a measured effect with
where it was measured, or "not measured".
"""

DISTILLER_HEADER = """
## Distillers and labels

Unsupervised hashing trains without labels. A distiller instance that reads the training labels
says so (`Distiller.reads_labels`); this table is read from the registry's metadata
(`label`, `family`, `needs_rotations`).
"""


def render_document() -> str:
    """The whole ``docs/departures.md``."""
    return HEADER + "\n" + render_markdown() + DISTILLER_HEADER + "\n" + render_distiller_table()


DOC_PATH = repo_root() / "docs" / "departures.md"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Write docs/departures.md from the registry.")
    parser.add_argument("--out", default=str(DOC_PATH), help="output path (default: %(default)s)")
    args = parser.parse_args(argv)
    Path(args.out).write_text(render_document())
    print(f"wrote {args.out} ({len(DEPARTURES)} departures)")


if __name__ == "__main__":
    main()
