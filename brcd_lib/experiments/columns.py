"""Extra metric columns of the result rows, computed from a run's codes when its rows are built.

The headline metric (mAP@K) is computed when a run finishes and stored in its record. Any other
metric is a *column*: a function registered here that receives the codes of one paradigm
(``(n, L)`` float tensors of +-1) and the labels (multi-hot ``np.ndarray``) and returns a number. Columns are evaluated every time rows are built, from the run's selected heads
and the cached backbone features, so a column added later appears for cached runs too (never
silently missing). The registry is empty by default; a column costs one retrieval evaluation per
run and paradigm.

    @register_column("p_at_100")
    def precision_at_100(*, query_codes, db_codes, query_labels, db_labels, top_k):
        return float(precision_at_k_curve(query_codes, db_codes, query_labels, db_labels, [100])[0])
"""
from __future__ import annotations

from typing import Any, Callable

from ..registry import Registry

__all__ = ["COLUMNS", "register_column", "list_columns"]

ColumnFn = Callable[..., float]
COLUMNS: Registry = Registry("metric column")


def register_column(name: str, **meta: Any) -> Callable[[ColumnFn], ColumnFn]:
    """Register ``fn(*, query_codes, db_codes, query_labels, db_labels, top_k) -> float`` as the
    row column ``name``."""
    return COLUMNS.register(name, **meta)


def list_columns() -> list[str]:
    """Registered column names in registration order."""
    return list(COLUMNS)
