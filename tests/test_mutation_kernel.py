"""benchmarks/mutation_kernel.py: the mutants it makes of the compiled kernel (the run itself,
a fresh process and a numba compilation per mutant, is `make mutation`'s job)."""
from __future__ import annotations

import ast

from benchmarks import mutation_kernel as MK

_SOURCE = '''
from numba import njit

@njit("int64(int64)", cache=True)
def f(x):
    """A docstring: 1 < 2 is not mutated."""
    if x < 3:
        return min(x, 0)
    return x + 1
'''


def test_mutants_of_a_small_function_cover_each_operator_once_per_change():
    made = MK.mutants(_SOURCE)
    assert [(m.number, m.function, m.line, m.description) for m in made] == [
        (1, "f", 7, "Lt -> LtE"), (2, "f", 7, "Lt -> Gt"),
        (3, "f", 7, "3 -> 4"), (4, "f", 7, "3 -> 2"),
        (5, "f", 8, "min -> max"), (6, "f", 8, "0 -> 1"),
        (7, "f", 9, "Add -> Sub"), (8, "f", 9, "1 -> 2"), (9, "f", 9, "1 -> 0")]
    original = ast.unparse(ast.parse(_SOURCE)) + "\n"
    for m in made:  # one change each; the decorator and the docstring are never touched
        diff = MK._diff(original, m.source)
        assert len([line for line in diff.splitlines() if line.startswith("-")]) == 1
        assert "@njit('int64(int64)', cache=True)" in m.source
        assert "1 < 2 is not mutated" in m.source
    assert "if x <= 3:" in made[0].source and "return max(x, 0)" in made[4].source
    assert "return x - 1" in made[6].source


def test_every_mutant_of_the_kernel_parses_and_differs_from_it():
    source = (MK.ROOT / MK.KERNEL).read_text()
    original = ast.unparse(ast.parse(source)) + "\n"
    made = MK.mutants(source)
    functions = {name for name, _ in MK._functions(ast.parse(source))}
    assert {"topk_rows", "_accept", "_ranked", "_scan", "_distances",
            "_first_threshold"} <= functions
    assert len(made) > 80 and {m.function for m in made} <= functions
    assert len({m.source for m in made}) == len(made)
    for m in made:
        assert m.source != original
        ast.parse(m.source)


def test_only_a_clean_pass_is_a_survivor():
    assert not MK.detected("survived")
    for verdict in ("killed", "timeout", "crashed (SIGABRT)", "error (exit 2: no module)"):
        assert MK.detected(verdict)
    assert MK._signal_name(6) == "SIGABRT" and MK._signal_name(999) == "signal 999"


def test_every_declared_equivalent_names_a_mutant_of_the_kernel():
    made = MK.mutants((MK.ROOT / MK.KERNEL).read_text())
    keys = {(m.function, m.before, m.after) for m in made}
    assert set(MK.EQUIVALENT) <= keys, set(MK.EQUIVALENT) - keys
    assert all(m.before and m.after for m in made)  # one changed line each
    assert sum(m.equivalent is not None for m in made) == len(MK.EQUIVALENT)
