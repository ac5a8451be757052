"""benchmarks/paths.py: committed reports name paths relative to the repository and never a
machine's folder, in every benchmark that writes one."""
from __future__ import annotations

from benchmarks import bench_profiles
from benchmarks.paths import REPO, command_line, shown


def test_shown_is_relative_inside_the_repository_and_hides_folders_outside(tmp_path):
    assert shown(REPO / "results" / "benchmarks" / "retrieval.csv") == \
        "results/benchmarks/retrieval.csv"
    outside = tmp_path / "deep" / "retrieval.csv"
    assert shown(outside) == "<a folder outside the repository>/retrieval.csv"
    assert str(tmp_path) not in shown(outside)


def test_command_line_shows_path_options_in_both_spellings(tmp_path):
    argv = ["--repeats", "3", "--out-dir", str(tmp_path / "a"), f"--before={tmp_path}/b.csv",
            "--k", "7", f"--out-dir={REPO}/results/r"]
    line = command_line("benchmarks/bench_retrieval.py", argv, ("--out-dir", "--before"))
    assert line == ("python benchmarks/bench_retrieval.py --repeats 3 --out-dir "
                    "<a folder outside the repository>/a "
                    "--before=<a folder outside the repository>/b.csv --k 7 "
                    "--out-dir=results/r")
    assert str(tmp_path) not in line
    # a value that is not a path option is left alone, even when it looks like a path
    assert command_line("s.py", ["--seed", str(tmp_path)], ("--out-dir",)) == \
        f"python s.py --seed {tmp_path}"


def test_profile_row_names_no_folder_outside_the_repository(tmp_path):
    row = bench_profiles.profile_row("digits", results_dir=tmp_path, budget_s=1.0,
                                     notebooks=["01.ipynb"])
    assert str(tmp_path) not in row["notes"]
    assert row["notes"].startswith("no <a folder outside the repository>/run_log.json: run ")
