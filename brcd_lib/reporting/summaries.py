"""Small tidy frames the notebooks display: label distributions, cluster purity, mask
statistics, training histories, retrieval curves and case-study rankings."""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from ..metrics import hamming_distance, pr_curve, precision_at_k_curve

SPLITS = ("train", "val", "query", "database")


def label_distribution(splits) -> pd.DataFrame:
    """(split, class, count) for every split of a :class:`HashingSplits`."""
    rows = []
    for name in SPLITS:
        counts = np.asarray(getattr(splits, name).labels).sum(0)
        rows += [{"split": name, "class": c, "count": int(n)} for c, n in enumerate(counts)]
    return pd.DataFrame(rows)


def sample_images(imageset, *, n_per_class: int = 6) -> tuple[list, np.ndarray]:
    """The first ``n_per_class`` raw images of each class of a single-label set, and their
    class ids (raw = no transform: uint8 tensors or PIL images)."""
    raw = imageset.with_transform(None)
    labels = np.asarray(imageset.labels)
    class_ids = labels.argmax(1)
    idx = np.concatenate([np.flatnonzero(class_ids == c)[:n_per_class] for c in np.unique(class_ids)])
    return [raw[int(i)][0] for i in idx], labels[idx]


def cluster_purity(clusters, labels) -> float:
    """Fraction of items whose cluster's majority class is their own class (labels (n,) ids or
    (n, C) multi-hot; multi-hot uses the first label)."""
    clusters = np.asarray(clusters)
    labels = np.asarray(labels)
    ids = labels.argmax(1) if labels.ndim == 2 else labels
    total = 0
    for c in np.unique(clusters):
        total += np.bincount(ids[clusters == c]).max()
    return total / len(ids)


def mask_statistics(masks, *, rule: str) -> pd.DataFrame:
    """(rule, cluster, kept_bits, kept_fraction) of a (K, L) 0/1 mask matrix."""
    m = masks.detach().cpu().numpy() if isinstance(masks, torch.Tensor) else np.asarray(masks)
    return pd.DataFrame({"rule": rule, "cluster": np.arange(len(m)), "kept_bits": m.sum(1).astype(int),
                         "kept_fraction": m.mean(1)})


def history_frame(records: dict[str, dict]) -> pd.DataFrame:
    """(run, epoch, paradigm, map) from runs' ``record["history"]``."""
    rows = []
    for label, record in records.items():
        for h in record.get("history", []):
            for key, value in h.items():
                if key.startswith("val_"):
                    rows.append({"run": label, "epoch": h["epoch"], "paradigm": key[4:], "map": value})
    return pd.DataFrame(rows, columns=["run", "epoch", "paradigm", "map"])


def curve_frames(pairs: dict[tuple[str, str], tuple], query_labels, db_labels, *,
                 ks) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Precision-recall (by Hamming radius) and precision@K frames for several
    (model, paradigm) -> (query_codes, db_codes) pairs.

    The precision at a radius is averaged over the queries that retrieve at least one item
    within it (``zero_hit="skip"``): a query that retrieves nothing has no precision, and
    counting it as 0 would draw every curve down to precision 0 at recall 0. Where no query
    retrieves anything the precision is NaN (the figure leaves the point out)."""
    pr_rows, pk_rows = [], []
    for (model, paradigm), (q, db) in pairs.items():
        pr = pr_curve(q, db, query_labels, db_labels, zero_hit="skip")
        pr_rows.append(pd.DataFrame({"model": model, "paradigm": paradigm, "radius": pr["radius"],
                                     "precision": pr["precision"], "recall": pr["recall"]}))
        ks_ok = [k for k in ks if k <= len(db_labels)]
        pk = precision_at_k_curve(q, db, query_labels, db_labels, ks_ok)
        pk_rows.append(pd.DataFrame({"model": model, "paradigm": paradigm, "k": ks_ok,
                                     "precision": pk}))
    return pd.concat(pr_rows, ignore_index=True), pd.concat(pk_rows, ignore_index=True)


def top_results(query_codes, db_codes, query_labels, db_labels, *, queries, top: int = 10):
    """Indices of the ``top`` nearest database items (ties by index) for the chosen queries, and
    a boolean relevance matrix (at least one shared label)."""
    q = query_codes[queries]
    dist = np.asarray(hamming_distance(q, db_codes))
    order = np.argsort(dist, axis=1, kind="stable")[:, :top]
    ql = np.asarray(query_labels)[queries]
    dl = np.asarray(db_labels)
    relevant = np.stack([(dl[order[i]] @ ql[i]) > 0 for i in range(len(queries))])
    return order, relevant


def chance_map(query_labels, db_labels) -> float:
    """The mean share of the database relevant to a query (at least one shared label): about
    the mAP of a random ranking, the level an unrelated code scores."""
    q = np.asarray(query_labels, dtype=np.float32)
    d = np.asarray(db_labels, dtype=np.float32)
    relevant = np.zeros(len(q))
    for start in range(0, len(q), 1024):
        relevant[start:start + 1024] = ((q[start:start + 1024] @ d.T) > 0).mean(1)
    return float(relevant.mean())
