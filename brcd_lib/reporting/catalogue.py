"""The claims catalogue: what each claim quotes from the paper, what the kit compares to test it,
on which unit, against which threshold and margin, and the rule that turns its lines into one
verdict. One table (:data:`CATALOGUE`, :func:`catalogue_frame`) that the statistics
(:mod:`brcd_lib.reporting.claims`), the report and the tests all read.

``quote`` holds only the paper's own words, verbatim from its abstract (``docs/method.md``,
"The paper's abstract"); a claim the abstract does not make has an empty quote and is labelled
the kit's own check. ``operationalisation`` is the kit's test of it, in the kit's words.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import pandas as pd

__all__ = ["ClaimSpec", "CATALOGUE", "MARGIN", "LIFT_SHARE_AT_CHANCE", "catalogue_frame", "spec",
           "KIT_CHECK", "SOURCE"]

#: the smallest effect of interest, in mAP (docs/statistics.md says why)
MARGIN = 0.01
#: an alternative "sits at chance" in a paradigm when, averaged over the code lengths of a
#: comparison, it recovers less than this share of the teacher's lift above the chance level:
#: (alternative - chance) / (teacher - chance) < 0.25 (docs/statistics.md, "Sanity checks")
LIFT_SHARE_AT_CHANCE = 0.25
SOURCE = "abstract (arXiv:2403.06071)"
KIT_CHECK = "— (not stated in the abstract: the kit's own check)"

_BASELINES_TEXT = ("extensive experiments not only showcase the noteworthy performance of our "
                   "BRCD method in comparison to other knowledge distillation methods")
_PARADIGMS_TEXT = ("To ensure the effectiveness of two kinds of search paradigms in the context "
                   "of semantic hashing, BRCD first aligns the semantic spaces between the "
                   "teacher and student models through a contrastive knowledge distillation "
                   "objective.")
_CLUSTER_TEXT = ("to eliminate noisy augmentations and ensure robust optimization, a "
                 "cluster-based method within the knowledge distillation process is introduced.")
_MASK_TEXT = ("we uncover the presence of redundancy bits resulting from the bit independence "
              "property. To mitigate these effects, we introduce a bit mask mechanism in our "
              "knowledge distillation objective.")
_GENERALITY_TEXT = ("substantiate the generality of our methods across diverse semantic hashing "
                    "models and backbones.")


@dataclass(frozen=True)
class ClaimSpec:
    """One claim of the catalogue.

    name: the claim's key. quotes: the paper's sentences (verbatim, from :data:`SOURCE`), empty
    for a check of the kit's own. operationalisation: what the kit compares, in words.
    study: the rows it reads (``results/<profile>/tables/<study>_rows.csv``).
    builder: how the lines are computed (:mod:`brcd_lib.reporting.claims`): ``difference``
    (A minus each alternative, per code length and pooled), ``gap_share`` (share of the teacher -
    undistilled student gap closed), ``teacher_unit`` (the teacher seed as the unit),
    ``per_pair`` (each backbone pair), ``per_setting`` (each hashing model).
    column / a / b: the rows' column and the values compared (``b`` empty with
    ``baselines=True``: every registered KD baseline present in the rows).
    measure: ``mAP`` (a difference) or ``share`` (a fraction of a gap); threshold: the value the
    difference must exceed; margin: the smallest effect of interest (``None``: no equivalence
    verdict). unit: the independent unit of the lines. premise: whether the claim needs the
    teacher - student gap (:mod:`brcd_lib.reporting.premise`); sanity: whether a line whose
    alternative sits at chance is a sanity check. scope: the evidence lines the overall verdict
    needs, in words.
    """

    name: str
    quotes: tuple[str, ...]
    operationalisation: str
    study: str
    builder: str
    column: str = "method"
    a: str = "brcd"
    b: tuple[str, ...] = ()
    labels: tuple[str, ...] = ()
    baselines: bool = False
    measure: str = "mAP"
    threshold: float = 0.0
    margin: float | None = MARGIN
    unit: str = "student seed"
    premise: bool = True
    sanity: bool = True
    scope: str = ""

    @property
    def paper_text(self) -> str:
        """The claim column: the paper's words in quotes, or :data:`KIT_CHECK`."""
        if not self.quotes:
            return KIT_CHECK
        return " … ".join(f"“{q}”" for q in self.quotes)

    @property
    def rule(self) -> str:
        """The overall verdict rule of this claim, in words."""
        return (f"supported when every evidence line ({self.scope}) is supported after "
                "adjustment; contradicted when any evidence line is contradicted; premise not "
                "met when the premise fails for any evidence line and none is contradicted; "
                "equivalent when every evidence line is equivalent; inconclusive otherwise. "
                "Sanity lines do not count.")


CATALOGUE: tuple[ClaimSpec, ...] = (
    ClaimSpec(
        name="beats_baselines", quotes=(_BASELINES_TEXT, _PARADIGMS_TEXT),
        operationalisation="BRCD's test mAP@K minus each KD baseline's, in each search paradigm, "
                           "per code length and pooled over lengths; above 0",
        study="main", builder="difference", baselines=True,
        scope="each KD baseline x each paradigm x each code length, and the pooled lines"),
    ClaimSpec(
        name="beats_no_kd", quotes=(),
        operationalisation="BRCD's test mAP@K minus the undistilled student's (the paper's "
                           "'Student' row), in each paradigm, per code length and pooled; above 0",
        study="main", builder="difference", b=("none",), labels=("Student (no KD)",),
        scope="each paradigm x each code length, and the pooled lines"),
    ClaimSpec(
        name="approaches_teacher", quotes=(),
        operationalisation="share of the teacher - undistilled student gap that BRCD closes, "
                           "(BRCD - no KD) / (teacher - no KD), per seed; above one half",
        study="main", builder="gap_share", b=("none",), labels=("share of the teacher gap closed",),
        measure="share", threshold=0.5, margin=None, sanity=False,
        scope="each paradigm x each code length, and the pooled lines"),
    ClaimSpec(
        name="mask_helps", quotes=(_MASK_TEXT,),
        operationalisation="BRCD minus BRCD without the bit mask (ablation), each paradigm; "
                           "above 0",
        study="ablations", builder="difference", column="variant", b=("no_mask",),
        labels=("BRCD without the bit mask",), scope="each paradigm x each ablation code length"),
    ClaimSpec(
        name="cluster_helps", quotes=(_CLUSTER_TEXT,),
        operationalisation="BRCD minus BRCD without the cluster-based handling of false "
                           "negatives and offset positives (ablation), each paradigm; above 0",
        study="ablations", builder="difference", column="variant", b=("no_cluster",),
        labels=("BRCD without the cluster handling",),
        scope="each paradigm x each ablation code length"),
    ClaimSpec(
        name="alpha_vs_1", quotes=(),
        operationalisation="BRCD (alpha = 0.8) minus alpha = 1 (individual term only), each "
                           "paradigm; above 0",
        study="ablations", builder="difference", column="variant", b=("alpha_1",),
        labels=("alpha = 1 (individual term only)",),
        scope="each paradigm x each ablation code length"),
    ClaimSpec(
        name="alpha_vs_0", quotes=(),
        operationalisation="BRCD (alpha = 0.8) minus alpha = 0 (structural term only), each "
                           "paradigm; above 0",
        study="ablations", builder="difference", column="variant", b=("alpha_0",),
        labels=("alpha = 0 (structural term only)",),
        scope="each paradigm x each ablation code length"),
    ClaimSpec(
        name="paper_mask_vs_released", quotes=(),
        operationalisation="BRCD with the paper's mask rule minus the released code's all-zero "
                           "mask, each paradigm; above 0",
        study="ablations", builder="difference", column="variant", b=("upstream_mask",),
        labels=("released mask rule",), scope="each paradigm x each ablation code length"),
    ClaimSpec(
        name="robust_to_teacher", quotes=(),
        operationalisation="BRCD minus KD with the teacher as the unit: per teacher seed, the "
                           "mean over its student seeds; each paradigm; above 0",
        study="teacher_seeds", builder="teacher_unit", b=("kd",), labels=("KD",),
        unit="teacher seed", scope="each paradigm"),
    ClaimSpec(
        name="across_backbones", quotes=(_GENERALITY_TEXT,),
        operationalisation="BRCD minus KD for every teacher -> student backbone pair, each "
                           "paradigm; above 0",
        study="pairs", builder="per_pair", b=("kd",), labels=("KD",),
        scope="each backbone pair x each paradigm"),
    ClaimSpec(
        name="across_hashing_models", quotes=(_GENERALITY_TEXT,),
        operationalisation="BRCD minus KD with each hashing model (teacher and student trained "
                           "with the same objective), each paradigm; above 0",
        study="generality", builder="per_setting", b=("kd",), labels=("KD",),
        scope="each hashing model x each paradigm"),
)


def spec(name: str) -> ClaimSpec:
    """The catalogue entry ``name`` (ValueError naming the valid ones)."""
    for entry in CATALOGUE:
        if entry.name == name:
            return entry
    raise ValueError(f"unknown claim {name!r}; the catalogue has {', '.join(e.name for e in CATALOGUE)}")


def catalogue_frame() -> pd.DataFrame:
    """The catalogue as a table: one row per claim, with its paper text and rule."""
    rows = []
    for entry in CATALOGUE:
        row = asdict(entry)
        row["quotes"] = entry.paper_text
        row["b"] = ", ".join(entry.b) or ("every KD baseline" if entry.baselines else "")
        row["labels"] = ", ".join(entry.labels)
        row["rule"] = entry.rule
        rows.append(row)
    return pd.DataFrame(rows).rename(columns={"quotes": "paper states"})
