"""The report's claims and findings sections, from a results folder written by hand here."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd

from brcd_lib.experiments.profiles import get_profile
from brcd_lib.reporting.findings import claims_markdown, findings_markdown, load_rows


def _write(root, name, rows):
    (root / "tables").mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(root / "tables" / name, index=False)


def test_sections_read_the_rows_and_name_failed_runs(tmp_path):
    rng = np.random.default_rng(0)
    main = []
    for b in (16, 32):
        for p in ("symmetric", "asymmetric"):
            main.append(dict(method="teacher", variant="teacher", bits=b, seed=0, paradigm=p,
                             value=0.8, status="ok"))
            for s in range(3):
                for m, v in (("none", 0.6 if p == "symmetric" else 0.1), ("kd", 0.7), ("sp", 0.65 if p == "symmetric" else 0.12), ("brcd", 0.72)):
                    main.append(dict(method=m, variant=m, bits=b, seed=s, paradigm=p,
                                     value=v + rng.normal(0, 0.002), status="ok"))
    main.append(dict(method="sp", variant="sp", bits=16, seed=9, paradigm="symmetric",
                     value=float("nan"), status="diverged: loss is nan"))
    _write(tmp_path, "main_rows.csv", main)
    (tmp_path / "data_protocol.json").write_text(json.dumps({"chance_map": 0.1}))
    rows = load_rows(str(tmp_path))
    assert set(rows) == {"main"}
    claims = "\n".join(claims_markdown(str(tmp_path)))
    assert "| beats_baselines" in claims and "BRCD vs KD, symmetric" in claims
    assert "not run" in claims  # ablations and teacher seeds are missing
    assert "3 seeds" in claims
    findings = "\n".join(findings_markdown(str(tmp_path), profile=get_profile("smoke")))
    assert "diverged: loss is nan" in findings and "1 run(s) did not give a number" in findings
    assert "about 0.100" in findings  # the chance level from the protocol file
    assert "no teacher: Student (no KD)" in findings
