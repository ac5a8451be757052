"""The mutation gate's report (benchmarks/mutation.py) on hand-made mutmut results: module names,
verdict counts, equivalents, kill rates and the exit status, all counted by hand."""
from __future__ import annotations

import json

import pytest

from benchmarks import mutation


def _meta(root, rel, codes):
    path = root / "brcd_lib" / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"exit_code_by_key": codes, "durations_by_key": {}}))


@pytest.mark.parametrize("name, module", [
    ("brcd_lib.metrics.x_map_at_k__mutmut_12", "brcd_lib.metrics"),
    ("brcd_lib.distill.brcd.xǁBRCDǁloss__mutmut_3", "brcd_lib.distill.brcd"),
    ("brcd_lib.experiments.compare.x__cells__mutmut_1", "brcd_lib.experiments.compare"),
])
def test_module_of_a_mutant(name, module):
    assert mutation.module_of(name) == module


@pytest.fixture
def run(tmp_path):
    mutants = tmp_path / "mutants"
    # metrics: 3 killed, 1 survivor declared equivalent -> 3 of 3 non-equivalent = 100 %
    _meta(mutants, "metrics.py.meta", {
        "brcd_lib.metrics.x_f__mutmut_1": 1, "brcd_lib.metrics.x_f__mutmut_2": 1,
        "brcd_lib.metrics.x_f__mutmut_3": 3, "brcd_lib.metrics.x_f__mutmut_4": 0})
    # compare: 9 killed, 1 timeout -> 9 / 10 = 90 % (target 90 %: met)
    _meta(mutants, "experiments/compare.py.meta", {
        **{f"brcd_lib.experiments.compare.x_g__mutmut_{i}": 1 for i in range(1, 10)},
        "brcd_lib.experiments.compare.x_g__mutmut_10": 36})
    # claims: 8 killed, 1 survived, 1 with no covering test -> 8 / 10 = 80 % (not met)
    _meta(mutants, "reporting/claims.py.meta", {
        **{f"brcd_lib.reporting.claims.x_h__mutmut_{i}": 1 for i in range(1, 9)},
        "brcd_lib.reporting.claims.x_h__mutmut_9": 0,
        "brcd_lib.reporting.claims.x_h__mutmut_10": 33})
    eq = tmp_path / "equivalents.toml"
    eq.write_text('[equivalent]\n"brcd_lib.metrics.x_f__mutmut_4" = "a default every caller '
                  'overrides"\n')
    return mutants, eq


def test_tally_counts_by_hand(run, monkeypatch):
    mutants, eq = run
    rows = {r["module"]: r for r in mutation.tally(mutation.read_verdicts(mutants),
                                                   mutation.read_equivalents(eq))}
    m, c, cl = rows["brcd_lib.metrics"], rows["brcd_lib.experiments.compare"], rows[
        "brcd_lib.reporting.claims"]
    assert (m["mutants"], m["killed"], m["survived"], m["equivalent"]) == (4, 3, 0, 1)
    assert m["killed of non-equivalent"] == 1.0 and m["target"] == 1.0 and m["met"]
    assert (c["mutants"], c["killed"], c["timeout"]) == (10, 9, 1)
    assert c["killed of non-equivalent"] == pytest.approx(0.9) and c["target"] == 0.9 and c["met"]
    assert (cl["killed"], cl["survived"], cl["no tests"]) == (8, 1, 1)
    assert cl["killed of non-equivalent"] == pytest.approx(0.8) and not cl["met"]


def test_report_and_gate(run, tmp_path, monkeypatch):
    mutants, eq = run
    monkeypatch.setattr(mutation, "EQUIVALENTS", eq)
    out = tmp_path / "out"
    args = mutation.get_args_parser().parse_args(
        ["--no-run", "--mutants", str(mutants), "--out-dir", str(out)])
    assert mutation.main(args) == 1  # claims below its target
    text = (out / "mutation.md").read_text()
    assert "| brcd_lib.reporting.claims | 10 | 8 | 1 | 1 | 0 |" in text
    assert "`x_h__mutmut_9`: survived, open" in text
    assert "`x_h__mutmut_10`: no tests, open" in text
    assert "`x_f__mutmut_4`: equivalent: a default every caller overrides" in text
    args.no_gate = True
    assert mutation.main(args) == 0


@pytest.mark.parametrize("rerun", [False, True])
def test_a_mutmut_run_that_fails_leaves_the_committed_report_alone(run, tmp_path, monkeypatch,
                                                                   capsys, rerun):
    # `mutmut run` exits 1 when a fast test fails before any mutant runs ("failed to collect
    # stats"): no verdict is known, and the report it would write would read "0 killed"
    mutants, eq = run
    monkeypatch.setattr(mutation, "EQUIVALENTS", eq)
    monkeypatch.setattr(mutation, "_mutmut_run", lambda children, patterns: (1, 12.0))
    out = tmp_path / "out"
    out.mkdir()
    for name in ("mutation.md", "mutation.csv", "mutation.run.json"):
        (out / name).write_text('{"wall_s": 1}' if name.endswith("json") else "committed\n")
    argv = ["--mutants", str(mutants), "--out-dir", str(out), "--keep"]
    if rerun:
        argv += ["--rerun", "x_h__mutmut_9"]
    assert mutation.main(mutation.get_args_parser().parse_args(argv)) == 2
    assert (out / "mutation.md").read_text() == "committed\n"
    assert (out / "mutation.csv").read_text() == "committed\n"
    assert (out / "mutation.run.json").read_text() == '{"wall_s": 1}'
    assert mutants.exists()
    assert "`mutmut run` exited with status 1 before it finished" in capsys.readouterr().err


def test_equivalent_without_a_reason_is_refused(tmp_path):
    eq = tmp_path / "eq.toml"
    eq.write_text('[equivalent]\n"brcd_lib.metrics.x_f__mutmut_4" = " "\n')
    with pytest.raises(SystemExit, match="need a reason"):
        mutation.read_equivalents(eq)


def test_no_results_is_a_clear_error(tmp_path):
    with pytest.raises(SystemExit, match="no mutmut results"):
        mutation.read_verdicts(tmp_path / "mutants")


def test_report_names_equivalents_that_are_killed_or_gone(run, tmp_path, monkeypatch):
    mutants, eq = run
    eq.write_text('[equivalent]\n"brcd_lib.metrics.x_f__mutmut_4" = "a default"\n'
                  '"brcd_lib.metrics.x_f__mutmut_2" = "renumbered"\n'
                  '"brcd_lib.metrics.x_gone__mutmut_1" = "function removed"\n')
    monkeypatch.setattr(mutation, "EQUIVALENTS", eq)
    out = tmp_path / "out"
    mutation.main(mutation.get_args_parser().parse_args(
        ["--no-run", "--no-gate", "--mutants", str(mutants), "--out-dir", str(out)]))
    text = (out / "mutation.md").read_text()
    gone = text.split("## Equivalents that no longer exist")[1].split("##")[0]
    killed = text.split("## Declared equivalent but killed")[1]
    assert "`brcd_lib.metrics.x_gone__mutmut_1`" in gone and "x_f__mutmut" not in gone
    assert "`brcd_lib.metrics.x_f__mutmut_2`" in killed and "x_f__mutmut_4" not in killed


def test_report_says_when_a_run_was_stopped_by_hand(run, tmp_path, monkeypatch):
    mutants, eq = run
    monkeypatch.setattr(mutation, "EQUIVALENTS", eq)
    out = tmp_path / "out"
    out.mkdir()
    (out / "mutation.run.json").write_text(json.dumps({
        "wall_s": 1434.4, "mutmut_exit": -15, "max_children": 2, "commit": "abc",
        "stopped": "3,847 of 11,004 checked",
        "reruns": [{"patterns": ["brcd_lib.metrics.*"], "wall_s": 61.0, "commit": "def"}]}))
    mutation.main(mutation.get_args_parser().parse_args(
        ["--no-run", "--no-gate", "--mutants", str(mutants), "--out-dir", str(out)]))
    text = (out / "mutation.md").read_text()
    assert ("- wall time of `mutmut run`: 1434 s with 2 workers (commit abc); stopped by hand "
            "before the end: 3,847 of 11,004 checked\n") in text
    assert "  - `brcd_lib.metrics.*`: 61 s (commit def)\n" in text


class _Item:
    def __init__(self, nodeid):
        self.nodeid = nodeid


def _order(tmp_path, monkeypatch, *, under_test, durations):
    import conftest

    (tmp_path / "mutmut-stats.json").write_text(json.dumps({"duration_by_test": durations}))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MUTANT_UNDER_TEST", under_test)
    items = [_Item(n) for n in ("t::slow", "t::unknown", "t::fast", "t::tie_a", "t::tie_b")]
    conftest.pytest_collection_modifyitems(None, items)
    return [i.nodeid for i in items]


def test_a_mutants_covering_tests_run_fastest_first(tmp_path, monkeypatch):
    """Under mutmut the covering tests are sorted by mutmut's recorded durations, ascending; equal
    durations keep their order, tests with no recorded duration go last."""
    durations = {"t::slow": 2.5, "t::fast": 0.001, "t::tie_a": 0.25, "t::tie_b": 0.25}
    assert _order(tmp_path, monkeypatch, under_test="brcd_lib.metrics.x_f__mutmut_3",
                  durations=durations) == ["t::fast", "t::tie_a", "t::tie_b", "t::slow",
                                           "t::unknown"]


@pytest.mark.parametrize("under_test", ["", "stats", "fail"])
def test_outside_a_mutants_run_the_order_is_left_alone(tmp_path, monkeypatch, under_test):
    """mutmut's stats and clean-test phases (and plain pytest) keep pytest's own order."""
    durations = {"t::slow": 2.5, "t::fast": 0.001, "t::tie_a": 0.25, "t::tie_b": 0.25}
    assert _order(tmp_path, monkeypatch, under_test=under_test, durations=durations) == [
        "t::slow", "t::unknown", "t::fast", "t::tie_a", "t::tie_b"]


def test_the_stats_file_is_parsed_once_per_process_and_again_when_rewritten(tmp_path, monkeypatch):
    """conftest.py is imported again in every mutant's session, mutmut_order is not: the 1.3 MB
    stats file is parsed once (in the process mutmut forks mutants from), a rewritten file is
    parsed again, and a missing file is not remembered as missing."""
    import mutmut_order

    monkeypatch.chdir(tmp_path)
    loads = []
    real_load = mutmut_order.json.load
    monkeypatch.setattr(mutmut_order.json, "load", lambda f: loads.append(1) or real_load(f))
    assert mutmut_order.durations() is None  # no file yet
    stats = tmp_path / "mutmut-stats.json"
    stats.write_text(json.dumps({"duration_by_test": {"t::a": 1.0}}))
    assert mutmut_order.durations() == {"t::a": 1.0}
    assert mutmut_order.durations() == {"t::a": 1.0}
    assert len(loads) == 1
    stats.write_text(json.dumps({"duration_by_test": {"t::a": 1.0, "t::b": 2.0}}))
    assert mutmut_order.durations() == {"t::a": 1.0, "t::b": 2.0}
    assert len(loads) == 2
    stats.write_text("{not json")
    assert mutmut_order.durations() is None
    stats.write_text(json.dumps({"other": 1}))
    assert mutmut_order.durations() is None


def test_the_conftest_hook_reuses_the_parsed_stats(tmp_path, monkeypatch):
    """Two mutants' sessions in one process: the second sorts from the cached durations."""
    import mutmut_order

    durations = {"t::slow": 2.5, "t::fast": 0.001, "t::tie_a": 0.25, "t::tie_b": 0.25}
    first = _order(tmp_path, monkeypatch, under_test="brcd_lib.metrics.x_f__mutmut_3",
                   durations=durations)
    monkeypatch.setattr(mutmut_order.json, "load", None)  # a second parse would fail
    assert mutmut_order.durations() == durations
    items = [_Item(n) for n in ("t::slow", "t::unknown", "t::fast", "t::tie_a", "t::tie_b")]
    mutmut_order.order_fastest_first(items)
    assert [i.nodeid for i in items] == first == ["t::fast", "t::tie_a", "t::tie_b", "t::slow",
                                                   "t::unknown"]
