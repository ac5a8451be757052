"""The report's claims and findings sections, from a results folder written by hand here; the
report's headings, captions and table widths."""
from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

from brcd_lib.experiments.profiles import get_profile
from brcd_lib.reporting.display import REPORT_TABLE_CHARS, fit_markdown
from brcd_lib.reporting.findings import claims_markdown, findings_markdown, load_rows
from brcd_lib.reporting.report import (MANIFEST, TITLES, caption_of, title_of,
                                       write_profile_report)


def _write(root, name, rows):
    (root / "tables").mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(root / "tables" / name, index=False)


def _folder(tmp_path):
    rng = np.random.default_rng(0)
    main = []
    for b in (16, 32):
        main.append(dict(method="LSH", variant="lsh", bits=b, seed=0, paradigm="symmetric",
                         value=0.4, status="ok", wall_s=0.0))
        for p in ("symmetric", "asymmetric"):
            main.append(dict(method="teacher", variant="teacher", bits=b, seed=0, paradigm=p,
                             value=0.8, status="ok", wall_s=10.0))
            for s in range(3):
                for m, v in (("none", 0.6 if p == "symmetric" else 0.1), ("kd", 0.7),
                             ("sp", 0.65 if p == "symmetric" else 0.12), ("brcd", 0.72)):
                    main.append(dict(method=m, variant=m, bits=b, seed=s, paradigm=p,
                                     value=v + rng.normal(0, 0.002), status="ok", wall_s=3.0))
    main.append(dict(method="sp", variant="sp", bits=16, seed=9, paradigm="symmetric",
                     value=float("nan"), status="diverged: loss is nan", wall_s=1.0))
    _write(tmp_path, "main_rows.csv", main)
    up = [dict(method="crd", variant=f"crd/{neg}", negatives=neg, bits=32, seed=s, paradigm=p,
               value=0.6 + (0.02 if neg == "class" else 0.0) + 0.001 * s * (neg == "class"),
               status="ok")
          for neg in ("class", "uniform") for s in range(3) for p in ("symmetric", "asymmetric")]
    _write(tmp_path, "upstream_baselines_rows.csv", up)
    _write(tmp_path, "efficiency_paper_backbones.csv",
           [dict(model="vit_b_16", params_M=80.0), dict(model="efficientnet_b0", params_M=5.0)])
    _write(tmp_path, "efficiency_profile_models.csv",
           [dict(model="teacher (t)", params_M=1.0, trainable_params_M=0.03, gflops_per_image=0.05,
                 latency_ms_b1=2.0),
            dict(model="student (s)", params_M=0.01, trainable_params_M=0.001,
                 gflops_per_image=0.001, latency_ms_b1=0.2)])
    (tmp_path / "data_protocol.json").write_text(json.dumps({"chance_map": 0.1}))
    return tmp_path


def test_sections_read_the_rows_and_name_failed_runs(tmp_path):
    root = _folder(tmp_path)
    rows = load_rows(str(root))
    assert set(rows) == {"main", "upstream_baselines"}
    claims = "\n".join(claims_markdown(str(root), profile=get_profile("fashion")))
    assert "### The premise" in claims and "| met " in claims.replace("|  met", "| met")
    assert "**`beats_baselines`:" in claims and "**`mask_helps`: not run**" in claims
    assert "BRCD vs KD" in claims and "pooled" in claims and "3 seeds" in claims
    assert f'bank_seed="{get_profile("fashion").student_train.bank_seed}"' in claims  # read from the profile
    assert "### Key lines" in claims and "sanity" in claims
    # the claim column quotes the paper, the kit's test has its own column
    assert "“extensive experiments not only showcase" in claims and "Kit: BRCD's test mAP@K" in claims
    findings = "\n".join(findings_markdown(str(root), profile=get_profile("smoke")))
    assert "diverged: loss is nan" in findings and "1 run(s) did not give a number" in findings
    assert "about 0.100" in findings  # the chance level from the protocol file
    assert "no teacher: Student (no KD)" in findings
    # the paper's parameter ratio is computed from the efficiency table, not typed
    assert "80.00M / 5.00M = 16.0x" in findings and "about 16x" not in findings
    # the contrastive_negatives departure quotes what the upstream study measured
    line = next(x for x in findings.splitlines() if "`contrastive_negatives`" in x)
    assert "measured here" in line and "CRD symmetric +0.0210" in line


def test_without_the_paper_backbones_the_ratio_says_so(tmp_path):
    root = _folder(tmp_path)
    (root / "tables" / "efficiency_paper_backbones.csv").unlink()
    findings = "\n".join(findings_markdown(str(root), profile=get_profile("smoke")))
    assert "were not measured in this profile" in findings


def test_report_writes_claims_csv_and_renders_the_table_from_it(tmp_path):
    root = _folder(tmp_path)
    path = write_profile_report(str(root), profile=get_profile("fashion"))
    table = pd.read_csv(root / "tables" / "claims.csv", dtype={"code_length": str})
    assert {"claim", "code_length", "adjusted_low", "kind", "verdict"} <= set(table.columns)
    for stem in ("claims_overall", "claims_premise", "claims_key_lines"):
        assert (root / "tables" / f"{stem}.csv").exists()
    report = open(path).read()
    line = table[(table["comparison"] == "BRCD vs KD") & (table["code_length"] == "pooled")
                 & (table["paradigm"] == "symmetric")].iloc[0]
    assert f"{line['estimate']:+.4f}" in report and line["verdict"] in report


def test_report_subheadings_are_words_and_captions_say_what_the_spread_is(tmp_path):
    stems = [s for _, _, tabs, figs in MANIFEST for s in tabs + figs]
    for stem in stems:
        assert stem in TITLES, stem
        assert "_" not in title_of(stem), stem
    for stem in ("main_table", "ablation_table", "generality_table", "pairs_table",
                 "teacher_seeds_table", "sensitivity_table"):
        assert "seed standard deviation" in caption_of(stem), stem
    for stem in ("main_results", "ablations", "generality", "pairs", "sensitivity"):
        assert "95 % t-interval" in caption_of(stem), stem
    root = _folder(tmp_path)
    pd.DataFrame({"method": ["BRCD"], "symmetric / 16 bits": ["0.7000 ± 0.0100"]}).to_csv(
        root / "tables" / "main_table.csv", index=False)
    report = open(write_profile_report(str(root), profile=get_profile("smoke"))).read()
    assert "### Main table" in report and "### main_table" not in report
    assert "mean ± seed standard deviation" in report


def _table_rows(markdown: str) -> list[str]:
    return [line for line in markdown.splitlines() if line.startswith("|")]


def test_report_tables_fit_the_page(tmp_path):
    wide = pd.DataFrame({"key": ["a", "b"], **{f"paradigm {i // 3} / col {i}": ["0.6543 ± 0.0123"] * 2
                                                for i in range(9)}})
    text = fit_markdown(wide)
    assert max(len(r) for r in _table_rows(text)) <= REPORT_TABLE_CHARS
    assert text.count("| key") == 3 and "(continued:" in text  # one part per paradigm group
    root = _folder(tmp_path)
    report = open(write_profile_report(str(root), profile=get_profile("fashion"))).read()
    for table in re.split(r"\n\n", report):
        rows = _table_rows(table)
        if rows and rows[0].count("|") > 3:  # a table of more than two columns
            assert max(len(r) for r in rows) <= REPORT_TABLE_CHARS, rows[0][:80]
    assert "| # | area | key |" not in report  # the departures are a list, not an 8-column table


@pytest.mark.parametrize("n_cols", [2, 3])
def test_narrow_tables_are_left_alone(n_cols):
    frame = pd.DataFrame({f"c{i}": ["x" * 10] for i in range(n_cols)})
    assert fit_markdown(frame).count("\n") == 2
