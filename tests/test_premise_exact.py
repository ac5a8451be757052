"""Exact outputs of :func:`brcd_lib.reporting.premise.premise_check` on rows written by hand.

Every value is chosen to be exact in binary floating point (multiples of 1/16), so the gap and
the needed spread can sit exactly on the boundary ``gap >= sds * sqrt(sd_t^2 + sd_s^2)``; every
expected number and sentence below is a literal worked out in the comments, never read from the
module under test."""
from __future__ import annotations

import math

import pandas as pd
import pytest

from brcd_lib.reporting.premise import premise_check

NAN = math.nan
COLUMNS = ["bits", "teacher", "teacher_sd", "teacher_n", "student_no_kd", "student_sd",
           "student_n", "gap", "needed", "lsh", "teacher_above", "student_above_lsh", "status",
           "reason"]
SQRT2 = math.sqrt(2.0)


def _rows(spec):
    """(setting, method, paradigm, bits, values..., status) -> one row per value, seeds 0, 1, ..."""
    rows = []
    for setting, method, paradigm, bits, values, *status in spec:
        for seed, value in enumerate(values):
            rows.append({"setting": setting, "method": method, "paradigm": paradigm,
                         "bits": bits, "seed": seed, "value": value,
                         "status": status[0] if status else "ok"})
    return pd.DataFrame(rows)


# settings listed out of order (D before A, 32 before 16): the output is sorted by setting, bits
SETTINGS = _rows([
    ("D", "none", "symmetric", 32, [0.25, 0.375]),
    ("D", "teacher", "symmetric", 32, [0.25]),
    ("lsh", "LSH", "symmetric", 32, [0.375]),
    ("lsh", "LSH", "symmetric", 16, [0.25]),
    ("lsh", "LSH", "asymmetric", 64, [0.125]),        # the asymmetric LSH row is not the reference
    ("lsh", "LSH", "symmetric", 16, [0.9], "failed"),  # a failed run is no reference either
    ("A", "none", "symmetric", 32, [0.25, 0.5, 0.75]),
    ("A", "teacher", "symmetric", 32, [0.9375]),
    ("A", "none", "symmetric", 16, [0.25, 0.5, 0.75]),
    ("A", "none", "symmetric", 16, [NAN]),             # a run without a value is left out
    ("A", "none", "symmetric", 16, [0.0], "failed"),   # and so is a failed one
    ("A", "teacher", "symmetric", 16, [0.9375, 1.125, 1.3125]),
    ("A", "teacher", "symmetric", 16, [5.0], "failed"),
    ("A", "none", "asymmetric", 16, [0.0, 0.0]),       # the asymmetric rows are never read
    ("A", "teacher", "asymmetric", 16, [0.0]),
    ("A", "teacher", "symmetric", 64, [1.0, 0.75]),
    ("A", "none", "symmetric", 64, [0.5]),
    ("B", "none", "symmetric", 16, [0.5, 0.75]),
    ("B", "teacher", "symmetric", 32, [0.5]),
    ("B", "none", "symmetric", 32, [0.5]),
    ("B", "none", "symmetric", 64, [0.5]),
    ("C", "teacher", "symmetric", 16, [1.0]),
    ("C", "none", "symmetric", 16, [0.25]),
    ("A", "brcd", "symmetric", 16, [0.7, 0.8]),        # other methods are neither side
])


def test_premise_check_every_branch_by_hand():
    out = premise_check(SETTINGS, by=["setting"])
    sd2 = 0.25 / SQRT2      # sample SD of two values 0.25 apart: 0.1767766952966369
    sd2h = 0.125 / SQRT2    # of two values 0.125 apart: 0.08838834764831845
    expected = pd.DataFrame([
        # A16: teacher 0.9375/1.125/1.3125 (mean 1.125, SD 3/16), student 0.25/0.5/0.75 (mean
        # 0.5, SD 1/4); gap 0.625 = needed 2 * sqrt((3/16)^2 + (4/16)^2) = 2 * 5/16 exactly:
        # the teacher is above (>=); LSH 0.25 < 0.5: met
        ["A", 16, 1.125, 0.1875, 3, 0.5, 0.25, 3, 0.625, 0.625, 0.25, True, True, "met", ""],
        # A32: one teacher run 0.9375 (no SD), gap 0.4375 < 2 * 0.25 = 0.5; LSH 0.375 < 0.5
        ["A", 32, 0.9375, NAN, 1, 0.5, 0.25, 3, 0.4375, 0.5, 0.375, False, True, "not met",
         "teacher 0.9375 vs undistilled student 0.5000: gap +0.4375 < 2 SDs (0.5000)"],
        # A64: teacher 1.0/0.75 (mean 0.875, SD 0.25/sqrt 2), one student run 0.5 (no SD):
        # gap 0.375 >= 2 * 0.1768 = 0.3536; no symmetric LSH row at 64 bits: not measured
        ["A", 64, 0.875, sd2, 2, 0.5, NAN, 1, 0.375, 2 * sd2, NAN, True, None, "not measured",
         "no LSH row"],
        # B16: no teacher rows: needed is the student's spread alone, 2 * 0.1768
        ["B", 16, NAN, NAN, 0, 0.625, sd2, 2, NAN, 2 * sd2, 0.25, None, True, "not measured",
         "no teacher rows"],
        # B32: teacher 0.5 = student 0.5: gap 0 >= needed 0 but not above 0
        ["B", 32, 0.5, NAN, 1, 0.5, NAN, 1, 0.0, 0.0, 0.375, False, True, "not met",
         "teacher 0.5000 vs undistilled student 0.5000: gap +0.0000 < 2 SDs (0.0000)"],
        # B64: neither a teacher nor an LSH row
        ["B", 64, NAN, NAN, 0, 0.5, NAN, 1, NAN, 0.0, NAN, None, None, "not measured",
         "no teacher rows; no LSH row"],
        # C16: teacher clearly above, but the student only equals LSH (0.25 <= 0.25)
        ["C", 16, 1.0, NAN, 1, 0.25, NAN, 1, 0.75, 0.0, 0.25, True, False, "not met",
         "undistilled student 0.2500 <= LSH 0.2500"],
        # D32: teacher 0.25 below the student's mean 0.3125 (SD 0.125/sqrt 2), and the student
        # below LSH 0.375: both parts fail, both named
        ["D", 32, 0.25, NAN, 1, 0.3125, sd2h, 2, -0.0625, 2 * sd2h, 0.375, False, False,
         "not met", "teacher 0.2500 vs undistilled student 0.3125: gap -0.0625 < 2 SDs (0.1768); "
                    "undistilled student 0.3125 <= LSH 0.3750"],
    ], columns=["setting"] + COLUMNS)
    pd.testing.assert_frame_equal(out, expected, check_exact=False, rtol=1e-12)


def test_premise_check_teacher_by_and_an_lsh_frame_without_status_or_paradigm_in_rows():
    """Backbone pairs share their teacher: its rows carry no student backbone and are matched on
    ``teacher_by`` only. The rows have no ``status`` and no ``paradigm`` column (all read as ok
    and symmetric); the LSH reference comes from ``lsh``, not from the rows' own LSH row."""
    rows = pd.DataFrame([
        {"teacher_backbone": "vit", "student_backbone": None, "method": "teacher", "bits": 16,
         "value": 1.0},
        {"teacher_backbone": "vit", "student_backbone": "resnet", "method": "none", "bits": 16,
         "value": 0.25},
        {"teacher_backbone": "vit", "student_backbone": "effnet", "method": "none", "bits": 16,
         "value": 0.5},
        {"teacher_backbone": None, "student_backbone": None, "method": "LSH", "bits": 16,
         "value": 0.125},
    ])
    lsh = pd.DataFrame([
        {"method": "LSH", "paradigm": "symmetric", "bits": 16, "value": 0.375, "status": "ok"},
        {"method": "LSH", "paradigm": "asymmetric", "bits": 16, "value": 0.0, "status": "ok"},
        {"method": "LSH", "paradigm": "symmetric", "bits": 16, "value": 0.0, "status": "failed"},
        {"method": "kd", "paradigm": "symmetric", "bits": 16, "value": 0.0, "status": "ok"},
    ])
    out = premise_check(rows, lsh=lsh, by=["teacher_backbone", "student_backbone"],
                        teacher_by=["teacher_backbone"])
    expected = pd.DataFrame([
        # vit -> effnet: gap 1.0 - 0.5 = 0.5 > 0 (one run each: needed 0), 0.5 > LSH 0.375
        ["vit", "effnet", 16, 1.0, NAN, 1, 0.5, NAN, 1, 0.5, 0.0, 0.375, True, True, "met", ""],
        # vit -> resnet: gap 0.75, but 0.25 <= LSH 0.375
        ["vit", "resnet", 16, 1.0, NAN, 1, 0.25, NAN, 1, 0.75, 0.0, 0.375, True, False,
         "not met", "undistilled student 0.2500 <= LSH 0.3750"],
    ], columns=["teacher_backbone", "student_backbone"] + COLUMNS)
    pd.testing.assert_frame_equal(out, expected, check_exact=False, rtol=1e-12)
    # without lsh the rows' own LSH row (0.125) is the reference: both students are above it
    own = premise_check(rows, by=["teacher_backbone", "student_backbone"],
                        teacher_by=["teacher_backbone"])
    assert list(own["lsh"]) == [0.125, 0.125] and list(own["status"]) == ["met", "met"]


def test_premise_check_teacher_by_defaults_to_by():
    """A teacher row of another setting never counts (``teacher_by`` defaults to ``by``); with
    ``sds=1`` the needed gap is one SD of the difference."""
    rows = _rows([("X", "teacher", "symmetric", 16, [0.75]),
                  ("Y", "none", "symmetric", 16, [0.25, 0.5]),
                  ("X", "none", "symmetric", 16, [0.25, 0.5]),
                  ("Z", "LSH", "symmetric", 16, [0.125])])
    out = premise_check(rows, by=["setting"], sds=1.0)
    sd2 = 0.25 / SQRT2
    expected = pd.DataFrame([
        # X: gap 0.75 - 0.375 = 0.375 >= 1 * 0.1768
        ["X", 16, 0.75, NAN, 1, 0.375, sd2, 2, 0.375, sd2, 0.125, True, True, "met", ""],
        ["Y", 16, NAN, NAN, 0, 0.375, sd2, 2, NAN, sd2, 0.125, None, True, "not measured",
         "no teacher rows"],
    ], columns=["setting"] + COLUMNS)
    pd.testing.assert_frame_equal(out, expected, check_exact=False, rtol=1e-12)


def test_premise_check_reason_names_the_sds_and_the_default_groups_by_bits_only():
    rows = _rows([("s", "teacher", "symmetric", 32, [0.5]),
                  ("s", "none", "symmetric", 32, [0.25, 0.5]),
                  ("s", "LSH", "symmetric", 32, [0.125])])
    out = premise_check(rows, sds=1.5)
    # gap 0.5 - 0.375 = 0.125 < 1.5 * 0.25/sqrt 2 = 0.2652
    expected = pd.DataFrame([
        [32, 0.5, NAN, 1, 0.375, 0.25 / SQRT2, 2, 0.125, 1.5 * 0.25 / SQRT2, 0.125, False, True,
         "not met", "teacher 0.5000 vs undistilled student 0.3750: gap +0.1250 < 1.5 SDs (0.2652)"],
    ], columns=COLUMNS)
    pd.testing.assert_frame_equal(out, expected, check_exact=False, rtol=1e-12)


def test_premise_check_without_undistilled_students_is_an_empty_table_with_the_columns():
    rows = _rows([("s", "teacher", "symmetric", 16, [0.9]), ("s", "LSH", "symmetric", 16, [0.1])])
    out = premise_check(rows, by=["setting"])
    expected = pd.DataFrame([], columns=["setting"] + COLUMNS)
    pd.testing.assert_frame_equal(out, expected)
    assert list(premise_check(rows.iloc[:0]).columns) == COLUMNS
    # no students: nothing is grouped, so a grouping column the rows lack is no error
    pd.testing.assert_frame_equal(premise_check(rows.drop(columns="setting"), by=["backbone"]),
                                  pd.DataFrame([], columns=["backbone"] + COLUMNS))


@pytest.mark.parametrize("student,status", [(0.375, "met"), (0.25, "not met")])
def test_student_exactly_at_lsh_is_not_above(student, status):
    rows = _rows([("s", "teacher", "symmetric", 16, [1.0]),
                  ("s", "none", "symmetric", 16, [student]),
                  ("s", "LSH", "symmetric", 16, [0.25])])
    line = premise_check(rows).iloc[0]
    assert line["status"] == status
    assert bool(line["student_above_lsh"]) == (status == "met")


def test_an_undistilled_student_trained_under_several_teachers_counts_once_per_student_seed():
    # the teacher-seed study: three teachers (teacher seeds 0, 1, 2), and the undistilled
    # student of seeds 0 and 1 once under each. Student seed 0 scored 0.25 under every teacher,
    # seed 1 scored 0.5, 0.5 and 0.75 (its stopping read another teacher): per-seed means 0.25
    # and 0.5833..., so n = 2, mean 0.41666..., SD |0.58333 - 0.25| / sqrt 2 = 0.2357...
    # (pooling the six rows as six units would give n = 6 and SD 0.2041).
    rows = pd.DataFrame(
        [{"method": "teacher", "paradigm": "symmetric", "bits": 32, "seed": t, "teacher_seed": t,
          "value": v, "status": "ok"} for t, v in enumerate([1.0, 1.125, 1.25])]
        + [{"method": "none", "paradigm": "symmetric", "bits": 32, "seed": s, "teacher_seed": t,
            "value": v, "status": "ok"}
           for s, values in enumerate([[0.25, 0.25, 0.25], [0.5, 0.5, 0.75]])
           for t, v in enumerate(values)]
        + [{"method": "LSH", "paradigm": "symmetric", "bits": 32, "seed": 0, "teacher_seed": NAN,
            "value": 0.125, "status": "ok"}])
    line = premise_check(rows).iloc[0]
    assert line["student_n"] == 2
    assert line["student_no_kd"] == pytest.approx(0.4166666666666667, rel=1e-12)
    assert line["student_sd"] == pytest.approx(0.2357022603955158, rel=1e-12)
    # the teachers: three distinct teacher seeds, mean 1.125, SD 0.125
    assert line["teacher_n"] == 3
    assert line["teacher"] == pytest.approx(1.125, rel=1e-12)
    assert line["teacher_sd"] == pytest.approx(0.125, rel=1e-12)
    # gap 0.70833 >= 2 * sqrt(0.125^2 + 0.2357^2) = 0.53359: met
    assert line["needed"] == pytest.approx(0.5335936864527374, rel=1e-12)
    assert line["status"] == "met"


def test_teacher_rows_are_never_merged_even_when_they_share_a_teacher_seed():
    # two teacher runs of one setting that share teacher seed 0 (e.g. two teacher backbones the
    # setting does not tell apart): two units, mean 1.0, SD 0.25 * sqrt 2 = 0.35355...
    rows = pd.DataFrame(
        [{"method": "teacher", "paradigm": "symmetric", "bits": 16, "seed": 0, "teacher_seed": 0,
          "value": v, "status": "ok"} for v in (0.75, 1.25)]
        + [{"method": "none", "paradigm": "symmetric", "bits": 16, "seed": s, "teacher_seed": 0,
            "value": v, "status": "ok"} for s, v in enumerate((0.25, 0.5))]
        + [{"method": "LSH", "paradigm": "symmetric", "bits": 16, "seed": 0, "teacher_seed": NAN,
            "value": 0.125, "status": "ok"}])
    line = premise_check(rows).iloc[0]
    assert line["teacher_n"] == 2
    assert line["teacher"] == 1.0
    assert line["teacher_sd"] == pytest.approx(0.3535533905932738, rel=1e-12)
    # student: 0.25 and 0.5, SD 0.125 * sqrt 2; needed 2 * sqrt(0.125 + 0.03125) = 0.790569...
    assert line["needed"] == pytest.approx(0.7905694150420949, rel=1e-12)
    assert line["status"] == "not met"  # gap 0.625 < 0.7906


def test_rows_without_a_unit_value_stay_units_of_their_own():
    """_per_unit averages the rows that share a unit value; a row whose unit is missing (NaN)
    is kept as a unit of its own, never dropped: seed 0 -> (0.125 + 0.375) / 2 = 0.25, the
    NaN-seed row 0.75 stays (pandas sorts the NaN group last)."""
    from brcd_lib.reporting.premise import _per_unit
    rows = pd.DataFrame({"seed": [0.0, 0.0, NAN], "value": [0.125, 0.375, 0.75]})
    assert _per_unit(rows, "seed").tolist() == [0.25, 0.75]
