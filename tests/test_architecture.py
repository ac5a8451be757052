"""The package's shape: no import cycles (imports inside functions included), layers that import
only downwards, and one registry mechanism whose lists reach every grid and table."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "brcd_lib"

# layer of each top-level part of the package; a module may import its own layer or lower ones
LAYERS = {
    "registry": 0, "paths": 0, "io": 0, "config": 0, "provenance": 0,
    "data": 1, "models": 1, "distill": 1, "metrics": 1, "analysis": 1,
    "training": 2,
    "experiments": 3,
    "reporting": 4,
    "reproduce": 5, "train": 5, "pretrain": 5,  # `python -m brcd_lib.reproduce` / `.train` / `.pretrain`
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """brcd_lib modules imported anywhere in the file (function bodies included)."""
    is_package = path.name == "__init__.py"
    base = name.split(".") if is_package else name.split(".")[:-1]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                stem = base[:len(base) - node.level + 1]
                mod = ".".join(stem + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            # `from pkg import sub` names the submodule; `from mod import obj` the module
            subs = [f"{mod}.{a.name}" for a in node.names if f"{mod}.{a.name}" in known]
            targets = subs if len(subs) == len(node.names) else [mod] + subs
        else:
            continue
        for t in targets:
            if t in known and t != name:
                out.add(t)
    return out


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    known = set(mods)
    return {name: _imports(name, path, known) for name, path in mods.items()}


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_graph_sees_imports_inside_functions():
    graph = {"a": {"b"}, "b": {"a"}}
    assert _find_cycle(graph) == ["a", "b", "a"]
    # and the parser records an import written inside a function
    src = PACKAGE / "experiments" / "reproduce.py"
    assert "brcd_lib.paths" in _imports("brcd_lib.experiments.reproduce", src, set(_modules()))


def test_no_import_cycles():
    cycle = _find_cycle(_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def _layer(module: str) -> int | None:
    parts = module.split(".")
    return LAYERS.get(parts[1]) if len(parts) > 1 else None


def test_layers_import_only_downwards():
    bad = []
    for module, targets in _graph().items():
        here = _layer(module)
        if here is None:  # brcd_lib/__init__ (lazy public API)
            continue
        bad += [f"{module} -> {t}" for t in targets if (_layer(t) or 0) > here]
    assert not bad, "imports against the layer order:\n" + "\n".join(bad)


def test_every_module_has_a_layer():
    missing = [m for m in _modules() if m != "brcd_lib" and _layer(m) is None]
    assert not missing, f"modules outside the declared layers: {missing}"


def test_top_level_keeps_only_leaves_and_launchers():
    top = sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__")
    assert top == sorted(k for k in LAYERS if (PACKAGE / f"{k}.py").exists())
    assert len(top) <= 9, top  # five leaves, metrics, three `python -m` launchers


def test_public_api_importable_from_the_top():
    import brcd_lib

    for name in ("map_at_k", "brcd_loss", "bit_masks", "offset_alpha", "get_distiller",
                 "list_distillers", "get_profile", "list_profiles"):
        assert callable(getattr(brcd_lib, name)), name
    with pytest.raises(AttributeError):
        brcd_lib.not_a_name  # noqa: B018
