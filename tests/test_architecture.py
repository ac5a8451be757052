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
    "data": 1, "models": 1, "distill": 1, "metrics": 1, "hamming_topk": 1, "analysis": 1,
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
    # five leaves, metrics and its compiled kernel, three `python -m` launchers
    assert len(top) <= 10, top


# the public names and the modules that define them (written out here, not read from brcd_lib)
PUBLIC_API = {
    "map_at_k": "brcd_lib.metrics", "evaluate_paradigms": "brcd_lib.metrics",
    "brcd_loss": "brcd_lib.distill.brcd", "bit_masks": "brcd_lib.distill.brcd",
    "offset_alpha": "brcd_lib.distill.brcd", "BRCDDistiller": "brcd_lib.distill.brcd",
    "get_distiller": "brcd_lib.distill", "list_distillers": "brcd_lib.distill",
    "list_methods": "brcd_lib.distill", "get_dataset": "brcd_lib.data",
    "list_datasets": "brcd_lib.data", "build_hashing_network": "brcd_lib.models",
    "create_backbone": "brcd_lib.models", "get_objective": "brcd_lib.models",
    "list_backbones": "brcd_lib.models", "list_objectives": "brcd_lib.models",
    "get_profile": "brcd_lib.experiments.profiles",
    "list_profiles": "brcd_lib.experiments.profiles",
    "Experiment": "brcd_lib.experiments.experiment",
}


def test_public_api_importable_from_the_top():
    """Each top-level name is the defining module's own object, and a few work by hand."""
    import importlib

    import numpy as np
    import torch

    import brcd_lib

    assert sorted(brcd_lib.__all__) == sorted([*PUBLIC_API, "__version__"])
    for name, module in PUBLIC_API.items():
        assert getattr(brcd_lib, name) is getattr(importlib.import_module(module), name), name
    with pytest.raises(AttributeError):
        brcd_lib.not_a_name  # noqa: B018
    # query [1, 1] (class 0) against [1, 1] (class 1), [1, -1] and [-1, -1] (class 0): relevant
    # items at ranks 2 and 3, AP = (1/2 + 2/3) / 2 = 7/12
    value = brcd_lib.map_at_k(np.array([[1, 1]]), np.array([[1, 1], [1, -1], [-1, -1]]),
                              np.array([0]), np.array([1, 0, 0]), k=3)
    assert value == pytest.approx(7 / 12)
    # alpha where the anchor's cluster and the view's nearest centroid agree, 1 where they differ
    alpha = brcd_lib.offset_alpha(0.8, torch.tensor([0, 1, 2]), torch.tensor([0, 2, 2]))
    assert alpha.tolist() == pytest.approx([0.8, 1.0, 0.8])
    # one cluster with bit means [1, 0]: the paper's rule keeps bit 0 only at margin 0.5
    masks = brcd_lib.bit_masks(torch.tensor([[1.0, 1.0], [1.0, -1.0]]), torch.tensor([0, 0]), 1, 0.5)
    assert masks.tolist() == [[1.0, 0.0]]
    assert brcd_lib.get_profile("smoke").name == "smoke"
    assert {"smoke", "digits"} <= set(brcd_lib.list_profiles())
    assert "brcd" in brcd_lib.list_distillers()
