"""Result tables, config hashing, profiles, the notebook runner's selection."""
from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from brcd_lib.config import DataConfig, config_hash
from brcd_lib.experiments.profiles import get_profile, list_profiles
from brcd_lib.reporting.tables import flatten_columns, mean_std_table, write_frame
from brcd_lib.experiments.reproduce import select


def _rows():
    rows = []
    for method, vals in {"a": [0.1, 0.3], "b": [0.5, 0.7], "teacher": [0.9, 0.9]}.items():
        for seed, v in enumerate(vals):
            rows.append({"method": method, "paradigm": "symmetric", "bits": 16, "seed": seed, "value": v})
    return pd.DataFrame(rows)


def test_mean_std_table_golden():
    numeric, display = mean_std_table(_rows(), order=["teacher", "a", "b"], exclude_from_best=["teacher"])
    col = ("symmetric", 16)
    assert numeric["mean"].loc["a", col] == pytest.approx(0.2)
    # sample std of (0.1, 0.3) = sqrt(0.02) = 0.141421...
    assert numeric["std"].loc["a", col] == pytest.approx(np.sqrt(0.02))
    assert display.loc["b", col] == "**0.6000 ± 0.1414**"      # best student, bold
    assert display.loc["teacher", col] == "0.9000 ± 0.0000"    # excluded from "best"
    assert list(display.index) == ["teacher", "a", "b"]
    flat = flatten_columns(display)
    assert "symmetric / 16 bits" in flat.columns


def test_mean_std_table_rejects_empty():
    with pytest.raises(ValueError, match="no result rows"):
        mean_std_table(_rows().iloc[:0])


def test_write_frame_csv_and_markdown(tmp_path):
    write_frame(_rows(), str(tmp_path / "t.csv"))
    assert pd.read_csv(tmp_path / "t.csv").shape == (6, 5)
    assert (tmp_path / "t.md").read_text().startswith("|")
    assert not list(tmp_path.glob("*.tmp*"))


def test_config_hash_changes_with_any_field():
    a = DataConfig()
    assert config_hash(a) == config_hash(DataConfig())
    assert config_hash(a) != config_hash(dataclasses.replace(a, split_seed=1))
    assert config_hash(a) != config_hash(dataclasses.replace(a, protocol={"subset": 3}))


def test_profiles_registry():
    assert {"smoke", "digits", "fashion", "paper"} <= set(list_profiles())
    with pytest.raises(ValueError, match="valid profiles: .*digits"):
        get_profile("nope")
    smoke = get_profile("smoke")
    assert smoke.seeds == (0,) and len(get_profile("digits").seeds) >= 3
    assert set(get_profile("digits").bits) == {16, 32, 64}


def test_runner_select():
    nbs = ["/n/01_data.ipynb", "/n/02_teachers.ipynb", "/n/11_report.ipynb"]
    assert select(nbs, ["02"]) == ["/n/02_teachers.ipynb"]
    assert select(nbs, None) == nbs
    with pytest.raises(ValueError, match="matches no notebook"):
        select(nbs, ["99"])


def test_schema_addition_at_default_keeps_old_hashes():
    """A field added later (SCHEMA_ADDITION) does not change the hash while it holds its default,
    so run caches written before it existed stay valid; a non-default value does change it."""
    import hashlib

    from brcd_lib.config import canonical_json

    d = DataConfig()
    old_view = {k: v for k, v in dataclasses.asdict(d).items() if k != "test_transform_options"}
    assert config_hash(d) == hashlib.sha256(canonical_json([old_view]).encode()).hexdigest()[:16]
    assert config_hash(d) != config_hash(dataclasses.replace(d, test_transform_options={"center_crop": False}))


def test_exclude_from_best_matches_a_level_of_a_multiindex():
    rows = _rows().assign(setting="x")
    _, display = mean_std_table(rows, index=["setting", "method"], exclude_from_best=["teacher"])
    col = ("symmetric", 16)
    assert display.loc[("x", "teacher"), col] == "0.9000 ± 0.0000"
    assert display.loc[("x", "b"), col].startswith("**")


def test_the_index_says_whether_a_profile_ran_with_its_current_settings():
    """results/README.md names each profile's commit and whether its run log's settings are the
    profile's current ones (committed results of an older configuration must not pass as new)."""
    from brcd_lib.experiments.reproduce import profile_settings
    from brcd_lib.reporting.report import settings_status

    current = profile_settings("smoke")
    assert settings_status("smoke", {"settings": current}) == "current"
    older = dict(current, bits=[8])
    assert settings_status("smoke", {"settings": older}).startswith("older")
    assert settings_status("smoke", {}).startswith("not recorded")
    assert settings_status("no_such_profile", {"settings": {}}) == "unknown profile"
