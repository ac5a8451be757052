"""Choose the CPU teacher / student backbones that stand in for the paper's ImageNet models.

Protocol (scikit-learn digits): 8x8 images scaled to 0..255 and bilinearly upsampled to 16 px;
per class 30 queries, the rest is the database; the head is trained on a seeded draw of 1000
database images; mAP@100 over Hamming ranking, ties broken by database index (stable sort), an
item is relevant when it has the query's class, a query with no relevant item in its top 100
counts 0.

For each configuration: SimCLR pretraining of the backbone on the 1000 training images
(``ssl_pretrain``, cached), then the backbone is frozen and a CIBHash head (the family's default
head) is trained for ``--head-epochs`` epochs, by default on a bank of ``--views`` augmented views
per training image whose backbone features are computed once (two different views of the bank
form a pair); ``--online`` also trains the head with fresh augmentations every step, for
comparison. Baseline: LSH (Gaussian random hyperplanes) on the centred raw 64 pixels.

    PYTHONPATH=. python benchmarks/explore_cpu_backbones.py --configs teacher student --online student

writes ``<out>/explore_cpu_backbones.json`` and ``.md`` (default ``results/benchmarks``).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

import numpy as np
import torch

from brcd_lib.models import (BatchAugment, build_hashing_network, count_flops, count_parameters,
                             get_objective, images_to_float, ssl_pretrain)
from brcd_lib.models.pretrain import STUDENT_SSL, TEACHER_SSL

# name -> backbone, its keyword arguments, SimCLR settings, head learning rate (method.md: teacher
# 5e-4, student 1e-3), head override (None = family default)
CONFIGS: dict[str, dict[str, Any]] = {
    "teacher": {"backbone": "cnn_teacher", "kw": {}, "ssl": TEACHER_SSL, "lr": 5e-4, "head": None},
    "student": {"backbone": "small_cnn_s", "kw": {}, "ssl": STUDENT_SSL, "lr": 1e-3, "head": None},
    "teacher_vit": {"backbone": "small_vit", "kw": {},
                    "ssl": {**TEACHER_SSL, "epochs": 70}, "lr": 5e-4, "head": None},
    "student_long": {"backbone": "small_cnn_s", "kw": {},
                     "ssl": {**STUDENT_SSL, "epochs": 100}, "lr": 1e-3, "head": None},
    "student_m": {"backbone": "small_cnn_m", "kw": {}, "ssl": STUDENT_SSL, "lr": 1e-3, "head": None},
    "student_random": {"backbone": "small_cnn_s", "kw": {},
                       "ssl": {**STUDENT_SSL, "epochs": 0}, "lr": 1e-3, "head": None},
    "student_short": {"backbone": "small_cnn_s", "kw": {},
                      "ssl": {**STUDENT_SSL, "epochs": 10}, "lr": 1e-3, "head": None},
}


# ------------------------------------------------------------------------------------------
# data and metric
# ------------------------------------------------------------------------------------------
def load_digits_split(*, seed: int, per_class_query: int, n_train: int) -> dict[str, np.ndarray]:
    """uint8 images (N, 1, 8, 8) and labels, split into query / database / train indices."""
    from sklearn.datasets import load_digits

    d = load_digits()
    images = np.rint(d.images * (255.0 / 16.0)).astype(np.uint8)[:, None]
    labels = d.target.astype(np.int64)
    rng = np.random.default_rng(seed)
    query = np.concatenate([rng.permutation(np.flatnonzero(labels == c))[:per_class_query]
                            for c in range(10)])
    database = np.setdiff1d(np.arange(len(labels)), query)
    train = np.sort(rng.choice(database, size=n_train, replace=False))
    return {"images": images, "labels": labels, "query": np.sort(query), "database": database,
            "train": train}


def map_at_k(q_codes: np.ndarray, db_codes: np.ndarray, q_labels: np.ndarray,
             db_labels: np.ndarray, k: int) -> float:
    """mAP@k over Hamming ranking of +-1 codes; ties by database index; zero-hit queries count 0."""
    ham = 0.5 * (q_codes.shape[1] - q_codes @ db_codes.T)
    aps = []
    for i in range(len(q_codes)):
        order = np.argsort(ham[i], kind="stable")[:k]
        rel = (db_labels[order] == q_labels[i]).astype(np.float64)
        hits = rel.sum()
        if hits == 0:
            aps.append(0.0)
            continue
        precision = np.cumsum(rel) / np.arange(1, len(rel) + 1)
        aps.append(float((precision * rel).sum() / hits))
    return float(np.mean(aps))


def lsh_codes(x_query: np.ndarray, x_db: np.ndarray, *, bits: int, seed: int):
    """Sign of Gaussian random projections of the inputs centred on the database mean."""
    mean = x_db.mean(axis=0, keepdims=True)
    w = np.random.default_rng(seed).standard_normal((x_db.shape[1], bits))
    sign = lambda v: np.where(v >= 0, 1.0, -1.0)  # noqa: E731
    return sign((x_query - mean) @ w), sign((x_db - mean) @ w)


# ------------------------------------------------------------------------------------------
# head training
# ------------------------------------------------------------------------------------------
@torch.no_grad()
def backbone_features(backbone, x: torch.Tensor, batch: int = 512) -> torch.Tensor:
    backbone.eval()
    return torch.cat([backbone(x[i:i + batch]) for i in range(0, len(x), batch)])


def train_head_cached(net, bank: torch.Tensor, *, epochs: int, batch_size: int, lr: float,
                      seed: int) -> None:
    """CIBHash on pairs of two different cached views: bank (V, N, d) backbone features."""
    objective = get_objective("cibhash")
    opt = torch.optim.Adam(net.trainable_parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    n_views, n = bank.shape[:2]
    net.train()
    for _ in range(epochs):
        perm = torch.randperm(n, generator=gen)
        for s in range(0, n, batch_size):
            idx = perm[s:s + batch_size]
            if len(idx) < 2:
                continue
            v1 = torch.randint(n_views, (len(idx),), generator=gen)
            v2 = (v1 + torch.randint(1, n_views, (len(idx),), generator=gen)) % n_views
            out = objective(net.head_forward(bank[v1, idx]), net.head_forward(bank[v2, idx]))
            opt.zero_grad(set_to_none=True)
            out.loss.backward()
            opt.step()


def train_head_online(net, base: torch.Tensor, augment: BatchAugment, *, epochs: int,
                      batch_size: int, lr: float, seed: int) -> None:
    """CIBHash on two fresh augmentations per image and step (frozen backbone)."""
    objective = get_objective("cibhash")
    opt = torch.optim.Adam(net.trainable_parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    n = base.shape[0]
    net.train()
    for _ in range(epochs):
        perm = torch.randperm(n, generator=gen)
        for s in range(0, n, batch_size):
            idx = perm[s:s + batch_size]
            if len(idx) < 2:
                continue
            x = base[idx]
            out = objective(net(augment(x, gen)), net(augment(x, gen)))
            opt.zero_grad(set_to_none=True)
            out.loss.backward()
            opt.step()


# ------------------------------------------------------------------------------------------
def run_config(name: str, cfg: dict[str, Any], data: dict[str, np.ndarray], args) -> list[dict]:
    if args.head is not None:
        cfg = {**cfg, "head": args.head}
    images = torch.from_numpy(data["images"])
    augment = BatchAugment(**{**cfg["ssl"].get("augment", {}), **({} if args.hflip_p is None
                                                                   else {"hflip_p": args.hflip_p})})
    torch.manual_seed(args.seed)
    probe = build_hashing_network(role="teacher", backbone=cfg["backbone"], code_length=16,
                                  head=cfg["head"], **cfg["kw"])
    backbone = probe.backbone
    ssl = cfg["ssl"]
    t0 = time.perf_counter()
    ssl_pretrain(backbone, images=images[data["train"]], image_size=args.image_size,
                 epochs=ssl["epochs"], batch_size=ssl["batch_size"], lr=ssl["lr"],
                 temperature=ssl["temperature"], seed=args.seed, device="cpu",
                 cache_dir=args.cache_dir, progress=False, augment=augment)
    info = backbone.ssl_pretrain_info
    ssl_seconds = info["seconds"]
    losses = info["epoch_losses"] or [float("nan")]
    print(f"[{name}] SimCLR {ssl['epochs']} epochs: {ssl_seconds:.1f} s "
          f"({'cache hit' if info['cache_hit'] else 'trained'}, wall {time.perf_counter() - t0:.1f} s), "
          f"loss {losses[0]:.3f} -> {losses[-1]:.3f}", flush=True)
    base = images_to_float(images, args.image_size)
    clean = augment.normalize(base)
    feats = backbone_features(backbone, clean)
    gen = torch.Generator().manual_seed(args.seed + 1)
    train_base = base[torch.from_numpy(data["train"])]
    t_bank = time.perf_counter()
    bank = torch.stack([backbone_features(backbone, augment(train_base, gen)) for _ in range(args.views)])
    bank_seconds = time.perf_counter() - t_bank
    rows = []
    modes = ["cached"] + (["online"] if name in args.online else [])
    for bits in args.bits:
        for mode in modes:
            torch.manual_seed(args.seed)
            net = build_hashing_network(role="teacher", backbone=cfg["backbone"], code_length=bits,
                                        head=cfg["head"], **cfg["kw"])
            net.backbone.load_state_dict(backbone.state_dict())
            net.backbone.eval()
            t1 = time.perf_counter()
            if mode == "cached":
                train_head_cached(net, bank, epochs=args.head_epochs, batch_size=args.batch_size,
                                  lr=cfg["lr"], seed=args.seed)
            else:
                train_head_online(net, train_base, augment, epochs=args.head_epochs,
                                  batch_size=args.batch_size, lr=cfg["lr"], seed=args.seed)
            head_seconds = time.perf_counter() - t1
            with torch.no_grad():
                codes = net.encode_features(feats).numpy()
            m = map_at_k(codes[data["query"]], codes[data["database"]], data["labels"][data["query"]],
                         data["labels"][data["database"]], args.top_k)
            row = {"config": name, "backbone": cfg["backbone"], "backbone_kw": cfg["kw"],
                   "head": net.head_name, "ssl": ssl, "bits": bits, "head_training": mode,
                   "map": m, "ssl_seconds": ssl_seconds, "ssl_cache_hit": info["cache_hit"],
                   "bank_seconds": bank_seconds if mode == "cached" else 0.0,
                   "head_seconds": head_seconds, "params": count_parameters(backbone),
                   "flops": count_flops(backbone, (3, args.image_size, args.image_size))}
            rows.append(row)
            print(f"[{name}] {bits:>2} bits, {mode:<6} head: mAP@{args.top_k} = {m:.4f} "
                  f"({head_seconds:.1f} s)", flush=True)
    return rows


def lsh_rows(data: dict[str, np.ndarray], args) -> list[dict]:
    x = data["images"].reshape(len(data["images"]), -1).astype(np.float64)
    rows = []
    for bits in args.bits:
        q, db = lsh_codes(x[data["query"]], x[data["database"]], bits=bits, seed=args.seed)
        m = map_at_k(q, db, data["labels"][data["query"]], data["labels"][data["database"]],
                     args.top_k)
        rows.append({"config": "lsh_raw_pixels", "bits": bits, "head_training": "-", "map": m})
    return rows


def markdown(rows: list[dict], bits: list[int], top_k: int) -> str:
    keys = []
    for r in rows:
        key = (r["config"], r["head_training"])
        if key not in keys:
            keys.append(key)
    head = f"| config | head training | " + " | ".join(f"mAP@{top_k} {b} bits" for b in bits)
    head += " | SimCLR s | head s (all bits) |"
    lines = [head, "|" + "---|" * (len(bits) + 4)]
    for cfg, mode in keys:
        rs = {r["bits"]: r for r in rows if r["config"] == cfg and r["head_training"] == mode}
        vals = " | ".join(f"{rs[b]['map']:.4f}" if b in rs else "-" for b in bits)
        any_r = next(iter(rs.values()))
        ssl = f"{any_r['ssl_seconds']:.1f}" if "ssl_seconds" in any_r else "-"
        hs = f"{sum(r.get('head_seconds', 0.0) + r.get('bank_seconds', 0.0) for r in rs.values()):.1f}"
        lines.append(f"| {cfg} | {mode} | {vals} | {ssl} | {hs if 'head_seconds' in any_r else '-'} |")
    return "\n".join(lines)


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--configs", nargs="+", default=["teacher", "student"], choices=sorted(CONFIGS))
    p.add_argument("--online", nargs="*", default=[], help="configs whose head is also trained online")
    p.add_argument("--bits", nargs="+", type=int, default=[16, 32, 64])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--image-size", type=int, default=16)
    p.add_argument("--per-class-query", type=int, default=30)
    p.add_argument("--n-train", type=int, default=1000)
    p.add_argument("--top-k", type=int, default=100)
    p.add_argument("--views", type=int, default=12, help="augmented views per image in the bank")
    p.add_argument("--head-epochs", type=int, default=100)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--hflip-p", type=float, default=None,
                   help="override the horizontal-flip probability of the configs' augmentation")
    p.add_argument("--head", default=None, help="override the configs' head (linear / mlp)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--cache-dir", default=".cache/benchmarks")
    p.add_argument("--out", default="results/benchmarks")
    return p


def main(args) -> list[dict]:
    torch.set_num_threads(args.threads)
    data = load_digits_split(seed=args.seed, per_class_query=args.per_class_query,
                             n_train=args.n_train)
    rows = lsh_rows(data, args)
    for r in rows:
        print(f"[lsh] {r['bits']:>2} bits: mAP@{args.top_k} = {r['map']:.4f}", flush=True)
    for name in args.configs:
        rows += run_config(name, CONFIGS[name], data, args)
    table = markdown(rows, args.bits, args.top_k)
    print(table)
    os.makedirs(args.out, exist_ok=True)
    meta = {"args": vars(args), "torch": torch.__version__, "threads": torch.get_num_threads()}
    with open(os.path.join(args.out, "explore_cpu_backbones.json"), "w") as f:
        json.dump({"meta": meta, "rows": rows}, f, indent=1, default=str)
    with open(os.path.join(args.out, "explore_cpu_backbones.md"), "w") as f:
        f.write(table + "\n")
    return rows


if __name__ == "__main__":
    main(get_args_parser().parse_args(sys.argv[1:]))
