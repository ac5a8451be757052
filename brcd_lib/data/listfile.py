"""``coco``, ``nuswide``, ``imagenet100``: image datasets described by list files.

The list files follow the DeepHash-pytorch / HashNet format, one image per line::

    relative/path/to/image.jpg 0 1 0 ... 0

(the path, then a 0/1 multi-hot label vector of fixed length). A dataset root holds
``train.txt`` (training images), ``test.txt`` (test queries) and ``database.txt`` (retrieval set);
the names can be overridden. Relative image paths are resolved against ``image_root`` (default:
the root); ``strip_prefix`` removes a machine-specific leading path first.

Validation (method.md section 4, item 3): ``validation="holdout"`` (default) removes a seeded
random ``n_val`` images from the training list and uses them as validation queries;
``validation="upstream"`` validates on the test queries, as the released code does.

Errors: a missing root or list file raises :class:`~brcd_lib.data.base.DatasetNotAvailableError`
(a ``FileNotFoundError``) naming the root, the expected files and where to get them; a malformed
line raises ``ValueError`` naming the file, the 1-based line number and the fix; a listed image
that does not exist is reported, with its path, when it is opened.
"""
from __future__ import annotations

import hashlib
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .base import (
    DatasetNotAvailableError,
    HashingSplits,
    assemble_splits,
    check_count,
    check_n_val,
    check_top_k,
)
from ..paths import data_root
from .registry import register_dataset
from .splits import load_or_create_split

__all__ = ["ListDatasetSpec", "LIST_DATASETS", "read_list_file", "list_validation_modes"]


@dataclass(frozen=True)
class ListDatasetSpec:
    """What the kit knows about one list-file dataset.

    ``expected`` holds the sizes of the upstream lists (train / query / database); ``None`` means
    no source we could check states the number, and the summary prints "unknown".
    """

    name: str
    title: str
    top_k: int
    n_classes: int
    expected: dict[str, int | None] = field(default_factory=dict)
    sizes_source: str = ""


LIST_DATASETS: dict[str, ListDatasetSpec] = {
    spec.name: spec for spec in (
        ListDatasetSpec(
            name="coco", title="MS-COCO (80 categories)", top_k=5000, n_classes=80,
            expected={"train": None, "query": None, "database": None},
            sizes_source="sizes unknown: no checked source states the list sizes",
        ),
        ListDatasetSpec(
            name="nuswide", title="NUS-WIDE (21 most frequent concepts)", top_k=5000, n_classes=21,
            # DeepHash-pytorch README: 195,834 images carry the 21 concepts; 100 per class (2,100)
            # are test queries, the remaining images form the database, from which 500 per class
            # (10,500) are sampled as the training set.
            expected={"train": 10_500, "query": 2_100, "database": 195_834 - 2_100},
            sizes_source="DeepHash-pytorch README (nuswide_21)",
        ),
        ListDatasetSpec(
            name="imagenet100", title="ImageNet-100 (100 classes)", top_k=1000, n_classes=100,
            expected={"train": None, "query": None, "database": None},
            sizes_source="sizes unknown: no checked source states the list sizes",
        ),
    )
}


# -- list files ---------------------------------------------------------------------------------
def _utf8_lines(path: Path):
    """(line number, line) of a UTF-8 text file; a byte that is not UTF-8 raises
    ``UnicodeDecodeError`` whose ``object`` is the whole file's bytes."""
    import io

    data = path.read_bytes()
    return enumerate(io.StringIO(data.decode("utf-8"), newline=None), start=1)


def read_list_file(path: str | os.PathLike) -> tuple[list[str], np.ndarray]:
    """Parse a list file into (image paths as written, ``(n, C)`` ``uint8`` labels).

    Blank lines are skipped. Every other line needs a path and C label values, each ``0`` or
    ``1``, where C is set by the first line.
    """
    path = Path(path)
    fix = "each line must read '<image path> <label_1> ... <label_C>' with 0/1 labels"
    paths: list[str] = []
    rows: list[str] = []
    n_labels: int | None = None
    first_line = 0
    try:
        lines = list(_utf8_lines(path))
    except UnicodeDecodeError as exc:
        line = exc.object.count(b"\n", 0, exc.start) + 1
        raise ValueError(f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start}, line "
                         f"{line}); list files must be UTF-8: convert it, e.g. "
                         "iconv -f latin1 -t utf-8") from None
    for lineno, line in lines:
        fields = line.split()
        if not fields:
            continue
        labels = fields[1:]
        if not labels:
            raise ValueError(f"{path}, line {lineno}: found only {fields[0]!r} and no label "
                             f"vector; {fix}")
        if n_labels is None:
            n_labels, first_line = len(labels), lineno
        elif len(labels) != n_labels:
            raise ValueError(
                f"{path}, line {lineno}: {len(labels)} label values, but line {first_line} has "
                f"{n_labels}; {fix} (C must be the same on every line; a path containing "
                "spaces also splits into extra fields)"
            )
        joined = "".join(labels)
        if len(joined) != n_labels or joined.strip("01"):
            bad = next(v for v in labels if v not in ("0", "1"))
            raise ValueError(f"{path}, line {lineno}: label value {bad!r} is not 0 or 1; {fix}")
        paths.append(fields[0])
        rows.append(joined)
    if not paths:
        raise ValueError(f"{path} lists no images; {fix}")
    flat = np.frombuffer("".join(rows).encode("ascii"), dtype=np.uint8)
    return paths, (flat - ord("0")).reshape(len(paths), n_labels)


def _resolve(paths: list[str], image_root: Path, strip_prefix: str | None) -> list[str]:
    out = []
    for p in paths:
        if strip_prefix and p.startswith(strip_prefix):
            p = p[len(strip_prefix):].lstrip("/")
        out.append(p if os.path.isabs(p) else os.fspath(image_root / p))
    return out


def _fingerprint(files: list[Path]) -> str:
    digest = hashlib.sha256()
    for f in files:
        with open(f, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
        digest.update(b"\0")
    return digest.hexdigest()[:16]


# -- validation modes ---------------------------------------------------------------------------
ValidationDraw = Callable[[np.random.Generator, int, int, int], dict[str, np.ndarray]]


def _holdout(rng: np.random.Generator, n_train: int, n_test: int, n_val: int) -> dict[str, np.ndarray]:
    perm = rng.permutation(n_train).astype(np.int64)
    return {"val": np.sort(perm[:n_val]), "train": np.sort(perm[n_val:])}


def _upstream(rng: np.random.Generator, n_train: int, n_test: int, n_val: int) -> dict[str, np.ndarray]:
    return {"val": np.arange(n_test, dtype=np.int64), "train": np.arange(n_train, dtype=np.int64)}


_VALIDATION: dict[str, tuple[ValidationDraw, str]] = {
    "holdout": (_holdout, "train_list"),
    "upstream": (_upstream, "test_list"),
}


def list_validation_modes() -> list[str]:
    """Valid values of the ``validation`` option."""
    return sorted(_VALIDATION)


# -- dataset construction -----------------------------------------------------------------------
def _default_root(name: str) -> Path:
    return data_root() / name


def _missing_data(spec: ListDatasetSpec, root: Path, names: list[str], missing: list[str]) -> DatasetNotAvailableError:
    return DatasetNotAvailableError(
        f"{spec.title}: dataset root {root} "
        + ("does not exist" if not root.is_dir() else f"lacks {', '.join(missing)}")
        + f"; expected the list files {', '.join(names)} there (one image per line: "
        "'<relative image path> <0/1 label vector>'). Get the DeepHash-pytorch / HashNet list "
        f"files (github.com/swuxyj/DeepHash-pytorch, data/) and the images, place them under "
        f"{root} (or pass root=..., image_root=... for images stored elsewhere; the list names "
        "can be changed with train_list / test_list / database_list)"
    )


def _resolve_n_val(validation: str, n_val: Any, n_train: int, val_fraction: float, max_val: int) -> int:
    if validation == "upstream":
        if n_val is not None:
            raise ValueError("n_val applies to validation='holdout' only; with 'upstream' the "
                             "validation queries are the test queries")
        return 0
    if n_val is None:
        if not 0.0 < val_fraction < 1.0:
            raise ValueError(f"val_fraction must lie in (0, 1), got {val_fraction!r}")
        n_val = max(1, min(check_count("max_val", max_val, minimum=1), int(n_train * val_fraction)))
    n_val = check_n_val(n_val)
    if n_val >= n_train:
        raise ValueError(f"n_val={n_val} leaves no training images out of {n_train}; lower n_val")
    return n_val


def build_list_dataset(spec: ListDatasetSpec, *, root: Any, split_dir: Any, seed: int,
                       train_list: str, test_list: str, database_list: str, image_root: Any,
                       strip_prefix: str | None, validation: str, n_val: int | None,
                       val_fraction: float, max_val: int, top_k: int | None) -> HashingSplits:
    """Read the three lists of ``spec`` under ``root`` and build the splits (see module doc)."""
    if validation not in _VALIDATION:
        raise ValueError(f"unknown validation {validation!r}; valid values: "
                         f"{', '.join(list_validation_modes())}")
    top_k = check_top_k(top_k)
    root_path = Path(root) if root is not None else _default_root(spec.name)
    names = [train_list, test_list, database_list]
    files = [root_path / n for n in names]
    missing = [n for n, f in zip(names, files) if not f.is_file()]
    if missing:
        raise _missing_data(spec, root_path, names, missing)

    parsed = [read_list_file(f) for f in files]
    widths = {n: lab.shape[1] for n, (_, lab) in zip(names, parsed)}
    if len(set(widths.values())) != 1:
        raise ValueError(f"{spec.title}: the list files disagree on the label length {widths}; "
                         "all lists of one dataset must use the same label vector")
    n_classes = next(iter(widths.values()))
    if n_classes != spec.n_classes:
        warnings.warn(f"{spec.title} lists under {root_path} have {n_classes} label columns; the "
                      f"usual {spec.name} lists have {spec.n_classes}", stacklevel=3)

    img_root = Path(image_root) if image_root is not None else root_path
    (train_p, train_y), (test_p, test_y), (db_p, db_y) = parsed
    n_train, n_test, n_db = len(train_p), len(test_p), len(db_p)
    n_val = _resolve_n_val(validation, n_val, n_train, val_fraction, max_val)
    val_draw, val_pool = _VALIDATION[validation]

    def draw(rng: np.random.Generator) -> dict[str, np.ndarray]:
        out = val_draw(rng, n_train, n_test, n_val)
        out["query"] = np.arange(n_test, dtype=np.int64)
        out["database"] = np.arange(n_db, dtype=np.int64)
        return out

    split_params = {"validation": validation, "n_val": n_val, "lists": _fingerprint(files)}
    pool_of = {"train": "train_list", "val": val_pool, "query": "test_list",
               "database": "database_list"}
    loaded = load_or_create_split(
        dataset=spec.name, params=split_params, seed=seed, split_dir=split_dir, draw=draw,
        pool_sizes={"train_list": n_train, "test_list": n_test, "database_list": n_db},
        pools=pool_of)

    up = spec.expected
    holdout = validation == "holdout"
    expected = {
        "train": (up.get("train") - n_val) if holdout and up.get("train") is not None else up.get("train"),
        "val": n_val if holdout else up.get("query"),
        "query": up.get("query"),
        "database": up.get("database"),
    }
    description = (
        f"{spec.title} from list files {', '.join(names)} under {root_path}; validation="
        f"{validation} (" + (f"{n_val} images held out of the training list" if holdout
                             else "validation queries = the test queries, as the released code")
        + f"); expected sizes: {spec.sizes_source}"
    )
    pools = {
        "train_list": (_resolve(train_p, img_root, strip_prefix), train_y),
        "test_list": (_resolve(test_p, img_root, strip_prefix), test_y),
        "database_list": (_resolve(db_p, img_root, strip_prefix), db_y),
    }
    return assemble_splits(
        name=spec.name, pools=pools, pool_of=pool_of, indices=loaded.indices,
        split_hash=loaded.split_hash, split_path=loaded.path, top_k=top_k,
        description=description,
        parameters={**split_params, "train_list": train_list, "test_list": test_list,
                    "database_list": database_list, "top_k": top_k},
        expected=expected, seed=seed,
        notes={"root": os.fspath(root_path), "image_root": os.fspath(img_root),
               "list_sizes": {"train": n_train, "test": n_test, "database": n_db}},
    )


def _make_factory(spec: ListDatasetSpec) -> Callable[..., HashingSplits]:
    def factory(*, root: Any = None, split_dir: Any = None, seed: int = 0,
                train_list: str = "train.txt", test_list: str = "test.txt",
                database_list: str = "database.txt", image_root: Any = None,
                strip_prefix: str | None = None, validation: str = "holdout",
                n_val: int | None = None, val_fraction: float = 0.1, max_val: int = 1000,
                top_k: int | None = spec.top_k) -> HashingSplits:
        return build_list_dataset(
            spec, root=root, split_dir=split_dir, seed=seed, train_list=train_list,
            test_list=test_list, database_list=database_list, image_root=image_root,
            strip_prefix=strip_prefix, validation=validation, n_val=n_val,
            val_fraction=val_fraction, max_val=max_val, top_k=top_k)

    factory.__name__ = spec.name
    factory.__qualname__ = spec.name
    factory.__doc__ = (
        f"Build {spec.title} from DeepHash-pytorch list files (mAP@{spec.top_k}).\n\n"
        "Options: train_list / test_list / database_list (file names under root), image_root "
        "(default root), strip_prefix, validation ('holdout' or 'upstream'), n_val (default "
        "min(max_val, val_fraction * training-list size)), top_k."
    )
    return factory


def _make_locate(spec: ListDatasetSpec) -> Callable[..., Path]:
    def locate(root: Any = None, *, train_list: str = "train.txt", test_list: str = "test.txt",
               database_list: str = "database.txt", **_: Any) -> Path:
        """The dataset root holding the three list files (raises ``DatasetNotAvailableError``);
        the images themselves are checked when they are opened."""
        folder = Path(root) if root is not None else _default_root(spec.name)
        names = [train_list, test_list, database_list]
        missing = [n for n in names if not (folder / n).is_file()]
        if missing:
            raise _missing_data(spec, folder, names, missing)
        return folder

    return locate


for _spec in LIST_DATASETS.values():
    register_dataset(_spec.name, locate=_make_locate(_spec))(_make_factory(_spec))
