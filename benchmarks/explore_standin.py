"""Issue #12: choose stronger CPU stand-ins for the paper's ImageNet teacher / student.

Every number is measured on the VALIDATION split (never the test queries) except in the
``final-eval --test`` step, which is run once, for the chosen recipe.

Commands (all single-threaded unless ``--threads``; results are appended to
``results/benchmarks/explore_standin.json`` and the markdown table is regenerated from it):

* ``run NAME ...``       SimCLR-pretrain each candidate (cached + checkpointed under
  ``--cache-dir``) and measure on fashion VAL: cosine mAP@1000 of the continuous features
  (val queries vs the 60,000-image database) and the kit's CIBHash head trained on the frozen
  features exactly as ``experiments.Experiment.teacher`` / ``.student`` train it (cached bank of 8
  augmented views of the 5,000 training images, the kit's ``small`` train transform; teacher:
  linear head, Adam 5e-4; student: MLP head, Adam 1e-3; validation every 10 epochs, patience
  long enough that the best validation is not the last one), mAP@1000 on val.
* ``baselines``          ITQ / LSH on raw pixels and cosine mAP of raw pixels, on val.
* ``timing``             parameters, FLOPs and forward time per 1,000 images (28 px and 16 px).
* ``final-pretrain``     the chosen recipes on every unlabelled image the protocol allows
  (Fashion-MNIST: the 60,000 training/database images; digits: the database, i.e. everything
  but the query and validation images), exported with ``export_pretrained`` (state dict + JSON
  sidecar) to ``--weights-dir``.
* ``final-eval``         the exported weights through ``experiments.Experiment`` (teacher at 16/32/64
  bits, undistilled student at 32 bits): val numbers; with ``--test`` also the test queries.

    PYTHONPATH=. OMP_NUM_THREADS=1 python benchmarks/explore_standin.py run rn_g1 rn_g2 ...
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from typing import Any

import numpy as np
import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT_JSON = os.path.join(REPO, "results", "benchmarks", "explore_standin.json")
OUT_MD = os.path.join(REPO, "results", "benchmarks", "explore_standin.md")

FASHION_FLIP = {"hflip_p": 0.5}          # clothes are left/right symmetric
DIGITS_AUG = {"hflip_p": 0.0}            # a mirrored digit is another symbol

# SimCLR recipes. "pool": number of database images (seeded draw) or "all".
BASE_SSL = {"batch_size": 256, "lr": 1e-3, "temperature": 0.5, "augment": FASHION_FLIP,
            "lr_schedule": "cosine", "warmup_epochs": 0}
PROXY = {"pool": 12000, "epochs": 5}     # 60,000 image passes: the quick proxy
FOLLOWUP = ("t_final_g4", "s_w8_1ep")    # measured after the final runs

CANDIDATES: dict[str, dict[str, Any]] = {
    # --- teachers (linear head) ---
    "t_cnn_teacher": {"role": "teacher", "backbone": "cnn_teacher", "kw": {},
                      "ssl": {**BASE_SSL, **PROXY}},
    "t_rn": {"role": "teacher", "backbone": "resnet_teacher", "kw": {"pool_grid": 1},
             "ssl": {**BASE_SSL, **PROXY}, "eval_kw": [{"pool_grid": 1}, {"pool_grid": 2}]},
    "t_rn_g2": {"role": "teacher", "backbone": "resnet_teacher", "kw": {"pool_grid": 2},
                "ssl": {**BASE_SSL, **PROXY}},
    "t_rn_t02_crop02": {"role": "teacher", "backbone": "resnet_teacher", "kw": {"pool_grid": 1},
                        "ssl": {**BASE_SSL, **PROXY, "temperature": 0.2,
                                "augment": {**FASHION_FLIP, "crop_scale": (0.2, 1.0)}},
                        "eval_kw": [{"pool_grid": 1}, {"pool_grid": 2}]},
    # --- students (MLP head) ---
    "s_cnn_s": {"role": "student", "backbone": "small_cnn_s", "kw": {},
                "ssl": {**BASE_SSL, **PROXY}, "hidden": [1000, 256, 128]},
    "s_cnn_w8": {"role": "student", "backbone": "small_cnn_s", "kw": {"width": 8},
                 "ssl": {**BASE_SSL, **PROXY}, "hidden": [256, 128]},
    # --- after the final runs (val only): options for a larger teacher-student gap ---
    # the final teacher's weights with no pooling of its 4x4 map (4096-d features)
    "t_final_g4": {"role": "teacher", "backbone": "resnet_teacher", "kw": {"pool_grid": 4},
                   "weights": "fashion_teacher_resnet_teacher", "ssl": {}},
    # the final student recipe with a 10x shorter SimCLR budget (1 epoch of the 60,000 images)
    "s_w8_1ep": {"role": "student", "backbone": "small_cnn_s", "kw": {"width": 8},
                 "ssl": {"batch_size": 256, "lr": 1e-3, "temperature": 0.5, "augment": FASHION_FLIP,
                         "lr_schedule": "cosine", "warmup_epochs": 0, "precision": "bf16",
                         "epochs": 1, "pool": "all"}, "hidden": [128]},
}


# ------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------
def _log(msg: str) -> None:
    print(time.strftime("%H:%M:%S"), msg, flush=True)


def load_rows() -> list[dict]:
    if os.path.exists(OUT_JSON):
        with open(OUT_JSON) as f:
            return json.load(f)["rows"]
    return []


def save_rows(rows: list[dict]) -> None:
    from brcd_lib.io import atomic_write_text
    from brcd_lib.provenance import library_versions
    from brcd_lib.models.pretrain import cpu_model

    meta = {"cpu_model": cpu_model(), "versions": library_versions(),
            "note": "every mAP is on the VALIDATION split unless the row's split says 'query'"}
    atomic_write_text(OUT_JSON, json.dumps({"meta": meta, "rows": rows}, indent=1, default=str) + "\n")
    atomic_write_text(OUT_MD, markdown(rows))


def add_row(row: dict) -> None:
    rows = load_rows()
    rows.append(row)
    save_rows(rows)


def experiment(dataset: str, cache_dir: str, **profile_overrides):
    from brcd_lib.experiments.experiment import Experiment
    from brcd_lib.experiments.profiles import get_profile

    profile = get_profile("fashion" if dataset == "fashion" else "digits", **profile_overrides)
    return Experiment(profile, cache_dir=cache_dir, progress=False, workers=1)


def pool_images(exp, pool: int | str, seed: int = 0) -> tuple[torch.Tensor, dict]:
    """Unlabelled pretraining images: the database split (never val / query), or a seeded draw."""
    db = exp.splits.database.images
    desc = {"dataset": exp.profile.data.name, "split": "database", "split_hash": exp.splits.split_hash,
            "n_database": int(len(db))}
    if pool == "all":
        return db, {**desc, "pool": "all database images", "n_images": int(len(db))}
    idx = torch.randperm(len(db), generator=torch.Generator().manual_seed(seed))[:int(pool)].sort().values
    return db[idx], {**desc, "pool": f"seeded draw (seed {seed}) of {int(pool)} database images",
                     "n_images": int(pool)}


def pretrain(exp, cand: dict, *, cache_dir: str, seed: int = 0, pool: Any = None):
    from brcd_lib.models import create_backbone, ssl_pretrain
    from brcd_lib.experiments.experiment import SSL_INIT_SEED

    ssl = dict(cand["ssl"])
    images, desc = pool_images(exp, pool if pool is not None else ssl.pop("pool", "all"), seed=seed)
    ssl.pop("pool", None)
    torch.manual_seed(SSL_INIT_SEED)
    backbone = create_backbone(cand["backbone"], **cand["kw"])
    t0 = time.time()
    ssl_pretrain(backbone, images=images, image_size=exp.profile.data.image_size,
                 seed=seed, device="cpu", cache_dir=os.path.join(cache_dir, "pretrain"),
                 progress=False, **ssl)
    info = backbone.ssl_pretrain_info
    _log(f"pretrained {cand['backbone']} {cand['kw']}: {info['seconds']:.0f} s "
         f"({'cache hit' if info['cache_hit'] else 'trained'}, call {time.time() - t0:.0f} s), "
         f"loss {info['epoch_losses'][0]:.3f} -> {info['epoch_losses'][-1]:.3f}")
    return backbone, desc


@torch.no_grad()
def cosine_map(q: torch.Tensor, db: torch.Tensor, q_labels, db_labels, k: int) -> float:
    """mAP@k of cosine ranking of continuous features (ties: stable by index; zero-hit = 0)."""
    q = torch.nn.functional.normalize(q.float(), dim=1)
    db = torch.nn.functional.normalize(db.float(), dim=1)
    ql, dl = torch.as_tensor(np.asarray(q_labels)), torch.as_tensor(np.asarray(db_labels))
    if ql.dim() > 1:  # one-hot labels of a single-label dataset
        if not bool((ql.sum(1) == 1).all() and (dl.sum(1) == 1).all()):
            raise ValueError("cosine_map handles single-label datasets only")
        ql, dl = ql.argmax(1), dl.argmax(1)
    aps = []
    for s in range(0, len(q), 500):
        sims = q[s:s + 500] @ db.T
        top = torch.topk(sims, k, dim=1, sorted=True).indices
        rel = (dl[top] == ql[s:s + 500, None]).double()
        prec = rel.cumsum(1) / torch.arange(1, k + 1, dtype=torch.float64)
        hits = rel.sum(1)
        ap = torch.where(hits > 0, (prec * rel).sum(1) / hits.clamp(min=1), torch.zeros_like(hits))
        aps.append(ap)
    return float(torch.cat(aps).mean())


def build_net(exp, role: str, backbone_name: str, kw: dict, state: dict, bits: int, *,
              hidden: int | None = None, seed: int = 0):
    from brcd_lib.models import build_hashing_network

    torch.manual_seed(seed)
    net = build_hashing_network(role=role, backbone=backbone_name, code_length=bits,
                                head_hidden=hidden, **kw)
    net.backbone.load_state_dict(state)
    return net.eval()


def train_head_val(exp, net, *, role: str, bits: int, epochs: int, eval_every: int, patience: int,
                   views: int = 8, seed: int = 0) -> dict:
    """CIBHash head on the frozen backbone, as ``Experiment.teacher`` / ``.student`` (method
    none) train it, selected on val; returns the best val mAP, its epoch and the history."""
    from brcd_lib.training import engine, sources
    from brcd_lib.config import TrainConfig
    from brcd_lib.models import get_objective

    lr = 5e-4 if role == "teacher" else 1e-3
    cfg = TrainConfig(epochs=epochs, batch_size=64, lr=lr, eval_every=eval_every, patience=patience,
                      feature_views=views)
    db_feats = exp.features(net, "database")
    val_feats = exp.features(net, "val")

    def validate():
        q = engine.codes_from_features(net, val_feats)
        return {"symmetric": exp.evaluate(q, engine.codes_from_features(net, db_feats), queries="val")}

    t0 = time.time()
    source = sources.BankPairSource(student_bank=exp.view_bank(net, views))
    loop = engine.fit(name=f"{role} {bits}", net=net, objective=get_objective("cibhash"),
                      source=source, train_cfg=cfg, seed=seed, validate=validate, progress=False)
    return {"val_map": loop.best["symmetric"], "best_epoch": loop.best_epoch["symmetric"],
            "epochs_run": loop.epochs_run, "stopped_early": loop.stopped_early,
            "last_val": loop.history[-1]["val_symmetric"], "head_seconds": time.time() - t0,
            "lr": lr, "patience": patience, "eval_every": eval_every,
            "history": [(h["epoch"], round(h["val_symmetric"], 4)) for h in loop.history]}


def evaluate(exp, name: str, cand: dict, backbone, desc: dict, args, *, stage: str) -> None:
    from brcd_lib.models import count_parameters

    state = backbone.state_dict()
    eval_kws = cand.get("eval_kw", [cand["kw"]])
    hiddens = cand.get("hidden", [None])
    for kw in eval_kws:
        probe = build_net(exp, cand["role"], cand["backbone"], kw, state, 32,
                          hidden=hiddens[0] if cand["role"] == "student" else None)
        t0 = time.time()
        val_f, db_f = exp.features(probe, "val"), exp.features(probe, "database")
        feat_s = time.time() - t0
        cmap = cosine_map(val_f, db_f, exp.labels("val"), exp.labels("database"), exp.splits.top_k)
        _log(f"[{name} {kw}] cosine mAP@{exp.splits.top_k} (val, continuous {val_f.shape[1]}-d): {cmap:.4f}")
        base = {"stage": stage, "candidate": name, "dataset": exp.profile.data.name,
                "role": cand["role"], "backbone": cand["backbone"], "kw": kw,
                "ssl": cand["ssl"], "pool": desc, "ssl_seconds": backbone.ssl_pretrain_info["seconds"],
                "ssl_epoch_losses": [round(v, 4) for v in backbone.ssl_pretrain_info["epoch_losses"]],
                "backbone_params": count_parameters(probe.backbone), "out_dim": int(val_f.shape[1]),
                "feature_seconds_65k": feat_s, "split": "val"}
        add_row({**base, "measure": "cosine_map_continuous", "value": cmap})
        for hidden in (hiddens if cand["role"] == "student" else [None]):
            for bits in args.bits:
                net = build_net(exp, cand["role"], cand["backbone"], kw, state, bits, hidden=hidden)
                res = train_head_val(exp, net, role=cand["role"], bits=bits, epochs=args.head_epochs,
                                     eval_every=args.eval_every, patience=args.patience)
                params = count_parameters(net)
                _log(f"[{name} {kw} hidden {hidden}] {bits} bits: val mAP {res['val_map']:.4f} "
                     f"(best epoch {res['best_epoch']}, ran {res['epochs_run']}, "
                     f"{res['head_seconds']:.0f} s), params incl. head {params:,}")
                add_row({**base, "measure": "hash_head_map", "bits": bits, "head_hidden": hidden,
                         "params_with_head": params, **res, "value": res["val_map"]})


# ------------------------------------------------------------------------------------------
# commands
# ------------------------------------------------------------------------------------------
def cmd_run(args) -> None:
    from brcd_lib.models import create_backbone
    from brcd_lib.models.pretrain import load_pretrained

    exp = experiment(args.dataset, args.cache_dir)
    for name in args.names:
        cand = CANDIDATES[name]
        if "weights" in cand:  # evaluate committed weights (e.g. another pooling of a final backbone)
            state, side = load_pretrained(os.path.join(args.weights_dir, cand["weights"] + ".pt"))
            backbone = create_backbone(cand["backbone"], **cand["kw"])
            backbone.load_state_dict(state)
            backbone.ssl_pretrain_info = {"seconds": side["train_seconds"],
                                          "epoch_losses": side["epoch_losses"]}
            cand = {**cand, "ssl": {k: v for k, v in side["recipe"].items() if k != "method"}}
            desc = side["data"]
        else:
            backbone, desc = pretrain(exp, cand, cache_dir=args.cache_dir)
        evaluate(exp, name, cand, backbone, desc, args,
                 stage="followup" if name in FOLLOWUP else "proxy")


def cmd_baselines(args) -> None:
    from brcd_lib.shallow import get_shallow_hasher

    exp = experiment(args.dataset, args.cache_dir)

    def pixels(set_name):
        s = getattr(exp.splits, set_name)
        return s.images.reshape(len(s), -1).float().numpy() / 255.0

    for name in ("lsh", "itq"):
        for bits in (16, 32, 64):
            h = get_shallow_hasher(name, code_length=bits, seed=0)
            h.fit(pixels("train"))
            m = exp.evaluate(h.encode(pixels("val")), h.encode(pixels("database")), queries="val")
            _log(f"{name} {bits} bits: val mAP {m:.4f}")
            add_row({"stage": "baseline", "candidate": f"{name}_raw_pixels",
                     "dataset": exp.profile.data.name, "measure": "hash_map", "bits": bits,
                     "split": "val", "value": m})
    cm = cosine_map(torch.from_numpy(pixels("val")), torch.from_numpy(pixels("database")),
                    exp.labels("val"), exp.labels("database"), exp.splits.top_k)
    _log(f"raw pixels cosine val mAP {cm:.4f}")
    add_row({"stage": "baseline", "candidate": "raw_pixels", "dataset": exp.profile.data.name,
             "measure": "cosine_map_continuous", "split": "val", "value": cm})


# ------------------------------------------------------------------------------------------
# final recipes
# ------------------------------------------------------------------------------------------
FINAL_SSL = {**BASE_SSL, "epochs": 10, "precision": "bf16"}
DIGITS_SSL = {**FINAL_SSL, "epochs": 200, "augment": DIGITS_AUG}
FINAL: dict[str, dict[str, Any]] = {
    "fashion": {
        "teacher": {"role": "teacher", "backbone": "resnet_teacher", "kw": {"pool_grid": 2},
                    "ssl": FINAL_SSL, "file": "fashion_teacher_resnet_teacher"},
        "student": {"role": "student", "backbone": "small_cnn_s", "kw": {"width": 8},
                    "ssl": FINAL_SSL, "file": "fashion_student_small_cnn_s_w8"},
        "student_w16": {"role": "student", "backbone": "small_cnn_s", "kw": {},
                        "ssl": FINAL_SSL, "file": "fashion_student_small_cnn_s_w16"},
        "student_hidden": 128,
    },
    "digits": {
        "teacher": {"role": "teacher", "backbone": "resnet_teacher", "kw": {"pool_grid": 2},
                    "ssl": DIGITS_SSL, "file": "digits_teacher_resnet_teacher"},
        "student": {"role": "student", "backbone": "small_cnn_s", "kw": {"width": 8},
                    "ssl": DIGITS_SSL, "file": "digits_student_small_cnn_s_w8"},
        "student_w16": {"role": "student", "backbone": "small_cnn_s", "kw": {},
                        "ssl": DIGITS_SSL, "file": "digits_student_small_cnn_s_w16"},
        "student_hidden": 128,
    },
}
"""dataset -> {"teacher": candidate, "student": candidate, "student_hidden": int}: the recipes
chosen from the exploration (results/benchmarks/explore_standin.md)."""


def weights_file(weights_dir: str, dataset: str, role: str, cand: dict) -> str:
    return os.path.join(weights_dir, cand.get("file", f"{dataset}_{role}_{cand['backbone']}") + ".pt")


def cmd_final_pretrain(args) -> None:
    from brcd_lib.models.pretrain import export_pretrained, tensor_fingerprint

    exp = experiment(args.dataset, args.cache_dir)
    for role in args.names or ["teacher", "student"]:
        cand = FINAL[args.dataset][role]
        images, desc = pool_images(exp, "all")
        desc["images_sha256"] = tensor_fingerprint(images)
        desc["excluded"] = "validation and query images (never seen by pretraining)"
        t0 = time.time()
        backbone, _ = pretrain(exp, {**cand, "ssl": {**cand["ssl"], "pool": "all"}},
                               cache_dir=args.cache_dir)
        path = weights_file(args.weights_dir, args.dataset, role, cand)
        side = export_pretrained(backbone, path, data=desc, extra={
            "role": cand["role"], "call_wall_seconds": time.time() - t0,
            "script": "benchmarks/explore_standin.py final-pretrain"})
        _log(f"wrote {path} ({side['bytes']:,} bytes, sha256 {side['sha256'][:12]}, "
             f"{side['train_seconds']:.0f} s of training)")


def final_profile(dataset: str, weights_dir: str, *, teacher_epochs: int, student_epochs: int,
                  patience: int, eval_every: int):
    from brcd_lib.config import BackboneConfig, ModelConfig, TrainConfig

    fin = FINAL[dataset]
    t, s = fin["teacher"], fin["student"]
    views = 8 if dataset == "fashion" else 12
    return {
        "teacher": ModelConfig(backbone=BackboneConfig(
            name=t["backbone"], kwargs=dict(t["kw"]),
            weights_path=weights_file(weights_dir, dataset, "teacher", t))),
        "student": ModelConfig(backbone=BackboneConfig(
            name=s["backbone"], kwargs=dict(s["kw"]),
            weights_path=weights_file(weights_dir, dataset, "student", s)),
            head_hidden=fin["student_hidden"]),
        "teacher_train": TrainConfig(epochs=teacher_epochs, batch_size=64, lr=5e-4,
                                     eval_every=eval_every, patience=patience, feature_views=views),
        "student_train": TrainConfig(epochs=student_epochs, batch_size=64, lr=1e-3,
                                     eval_every=eval_every, patience=patience, feature_views=views),
    }


def cmd_final_eval(args) -> None:
    from brcd_lib.models import count_parameters
    from brcd_lib.models.pretrain import load_pretrained
    from brcd_lib.shallow import get_shallow_hasher

    overrides = final_profile(args.dataset, args.weights_dir, teacher_epochs=args.head_epochs,
                              student_epochs=args.head_epochs, patience=args.patience,
                              eval_every=args.eval_every)
    exp = experiment(args.dataset, os.path.join(args.cache_dir, "final"), **overrides)
    fin = FINAL[args.dataset]
    def provenance_of(names):
        sides = {n: load_pretrained(weights_file(args.weights_dir, args.dataset, n, fin[n]))[1]
                 for n in names}
        return {"stage": "final", "dataset": exp.profile.data.name,
                "weights_sha256": {n: v["sha256"] for n, v in sides.items()},
                "ssl_seconds": {n: v["train_seconds"] for n, v in sides.items()}}

    t_bits = args.bits
    if not args.test:
        from brcd_lib.config import BackboneConfig, ModelConfig

        for name in args.names or ["teacher", "student"]:
            cand = fin[name]
            role = cand["role"]
            common = provenance_of([name])
            model = ModelConfig(backbone=BackboneConfig(
                name=cand["backbone"], kwargs=dict(cand["kw"]),
                weights_path=weights_file(args.weights_dir, args.dataset, name, cand)),
                head_hidden=fin["student_hidden"] if role == "student" else None)
            for bits in (t_bits if role == "teacher" else [32]):
                net = exp.build_network(model, bits, role=role, seed=0)
                res = train_head_val(exp, net, role=role, bits=bits,
                                     epochs=overrides[f"{role}_train"].epochs,
                                     eval_every=args.eval_every, patience=args.patience,
                                     views=overrides[f"{role}_train"].feature_views)
                params = count_parameters(net)
                _log(f"[final {name}] {bits} bits: val mAP {res['val_map']:.4f} (best epoch "
                     f"{res['best_epoch']}, ran {res['epochs_run']}); params incl. head {params:,}")
                add_row({**common, "candidate": f"final_{name}", "role": role,
                         "backbone": model.backbone.name, "kw": model.backbone.kwargs,
                         "measure": "hash_head_map", "bits": bits, "split": "val",
                         "head_hidden": model.head_hidden, "params_with_head": params,
                         "backbone_params": count_parameters(net.backbone), **res,
                         "value": res["val_map"]})
        return
    # the test queries, once, for the final recipe: through experiments.Experiment itself
    common = provenance_of(["teacher", "student"])
    for bits in t_bits:
        run = exp.teacher(bits)
        add_row({**common, "candidate": "final_teacher", "role": "teacher",
                 "backbone": fin["teacher"]["backbone"], "kw": fin["teacher"]["kw"],
                 "measure": "hash_head_map", "bits": bits, "split": "query",
                 "params_with_head": count_parameters(run.net),
                 "val_best": run.record["val_best"]["symmetric"],
                 "best_epoch": run.record["best_epoch"]["symmetric"],
                 "epochs_run": run.record["epochs_run"], "value": run.metrics["symmetric"]})
        _log(f"[test teacher] {bits} bits: query mAP {run.metrics['symmetric']:.4f} "
             f"(val {run.record['val_best']['symmetric']:.4f})")
        itq = exp.shallow(bits, "itq")["symmetric"]
        add_row({**common, "candidate": "itq_raw_pixels", "measure": "hash_map", "bits": bits,
                 "split": "query", "value": itq})
        _log(f"[test ITQ] {bits} bits: query mAP {itq:.4f}")
    for bits in [32]:
        run = exp.student(bits, method="none", seed=0)
        for paradigm in ("symmetric",):
            add_row({**common, "candidate": "final_student_none", "role": "student",
                     "backbone": fin["student"]["backbone"], "kw": fin["student"]["kw"],
                     "head_hidden": fin["student_hidden"], "measure": "hash_head_map",
                     "bits": bits, "split": "query", "paradigm": paradigm,
                     "params_with_head": count_parameters(run.net),
                     "val_best": run.record["val_best"][paradigm],
                     "best_epoch": run.record["best_epoch"][paradigm],
                     "epochs_run": run.record["epochs_run"], "value": run.metrics[paradigm]})
            _log(f"[test student none] {bits} bits {paradigm}: query mAP "
                 f"{run.metrics[paradigm]:.4f} (val {run.record['val_best'][paradigm]:.4f})")


def cmd_timing(args) -> None:
    from brcd_lib.models import count_flops, count_parameters, create_backbone

    cands = list(CANDIDATES.values()) + [f[r] for f in FINAL.values() for r in ("teacher", "student")]
    names = sorted({(c["backbone"], json.dumps(c["kw"], sort_keys=True)) for c in cands})
    for bb, kw in names:
        kw = json.loads(kw)
        m = create_backbone(bb, **kw).eval()
        for side in (28, 16):
            x = torch.randn(250, 3, side, side)
            with torch.no_grad():
                m(x[:50])
                times = []
                for _ in range(3):
                    t0 = time.perf_counter()
                    for _ in range(4):
                        m(x)
                    times.append(time.perf_counter() - t0)
            per_1k = sorted(times)[1]  # median of 3 x 1,000 images
            row = {"stage": "timing", "candidate": bb, "dataset": f"{side}px", "kw": kw,
                   "measure": "forward_s_per_1k_images", "split": "-", "value": per_1k,
                   "backbone_params": count_parameters(m), "flops": count_flops(m, (3, side, side)),
                   "threads": torch.get_num_threads(), "batch": 250}
            _log(f"{bb} {kw} {side}px: {per_1k:.3f} s / 1k images, {row['flops'] / 1e6:.1f} MFLOPs, "
                 f"{row['backbone_params']:,} params")
            add_row(row)
        add_row(simclr_cost(bb, kw))


def simclr_cost(bb: str, kw: dict, *, side: int = 28, pairs: int = 128, repeats: int = 3) -> dict:
    """Process CPU seconds of SimCLR steps (forward + backward + Adam, no augmentation) per
    60,000 image pairs at ``side`` px, float32 and bf16 autocast (as ``train_simclr`` runs them)."""
    from brcd_lib.models import create_backbone
    from brcd_lib.models.cibhash import nt_xent
    from brcd_lib.models.pretrain import projection_head

    out = {}
    x = torch.randn(2 * pairs, 3, side, side)
    for precision in ("fp32", "bf16"):
        torch.manual_seed(0)
        m = create_backbone(bb, **kw).train()
        proj = projection_head(m.out_dim, hidden=256, out_dim=64)
        opt = torch.optim.Adam(list(m.parameters()) + list(proj.parameters()), lr=1e-3)

        def step():
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
                z = proj(m(x))
            z = z.float()
            loss = nt_xent(z[:pairs], z[pairs:], temperature=0.5)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        step()
        c0 = time.process_time()
        for _ in range(repeats):
            step()
        out[precision] = (time.process_time() - c0) / repeats / pairs * 60000
    _log(f"{bb} {kw} SimCLR CPU s per 60k pairs at {side}px: fp32 {out['fp32']:.0f}, bf16 {out['bf16']:.0f}")
    return {"stage": "timing", "candidate": bb, "dataset": f"{side}px", "kw": kw,
            "measure": "simclr_cpu_s_per_60k_pairs", "split": "-", "value": out["fp32"],
            "bf16": out["bf16"], "fp32": out["fp32"], "threads": torch.get_num_threads()}


def _recipe(ssl: dict) -> str:
    aug = ssl.get("augment", {})
    parts = [f"{ssl.get('epochs')} ep", f"b{ssl.get('batch_size')}", f"lr {ssl.get('lr')}",
             f"T {ssl.get('temperature')}", ssl.get("lr_schedule", "constant")]
    if ssl.get("precision", "fp32") != "fp32":
        parts.append(ssl["precision"])
    if aug:
        parts.append(" ".join(f"{k}={v}" for k, v in aug.items()))
    return ", ".join(str(p) for p in parts)


def _fmt_params(r: dict) -> str:
    bb = r.get("backbone_params")
    out = f"{bb:,}" if isinstance(bb, int) else "-"
    if "params_with_head" in r:
        out += f" / {r['params_with_head']:,}"
    return out


def _summary(rows: list[dict]) -> list[str]:
    """Teacher vs ITQ vs undistilled student (symmetric), val and test, per dataset: the
    issue #12 targets, computed from the rows."""
    out: list[str] = []
    for ds in ("fashion_mnist", "digits"):
        q = [r for r in rows if r["stage"] == "final" and r["dataset"] == ds and r["split"] == "query"]
        if not q:
            continue
        itq_val = {r["bits"]: r["value"] for r in rows if r["stage"] == "baseline" and r["dataset"] == ds
                   and r["candidate"] == "itq_raw_pixels"}
        teacher = {r["bits"]: r for r in q if r["candidate"] == "final_teacher"}
        itq = {r["bits"]: r["value"] for r in q if r["candidate"] == "itq_raw_pixels"}
        student = {r["bits"]: r for r in q if r["candidate"] == "final_student_none"}
        out += [f"## Summary, {ds}: final teacher vs ITQ (raw pixels) vs undistilled student", "",
                "Teacher and student rows come from `experiments.Experiment.teacher` / `.student(method="
                "'none')` on the exported weights (their `val_best` is the validation mAP of the "
                "selected head, the test value is the query mAP of the same head); symmetric "
                "paradigm.", "",
                "| bits | teacher val | ITQ val | teacher test | ITQ test | teacher - ITQ (test) | "
                "student val | student test | teacher - student val | teacher - student test |",
                "|---|---|---|---|---|---|---|---|---|---|"]
        for b in sorted(teacher):
            t, st = teacher[b], student.get(b)
            cells = [str(b), f"{t['val_best']:.4f}", f"{itq_val.get(b, float('nan')):.4f}",
                     f"{t['value']:.4f}", f"{itq.get(b, float('nan')):.4f}",
                     f"{t['value'] - itq.get(b, float('nan')):+.4f}"]
            if st is not None:
                cells += [f"{st['val_best']:.4f}", f"{st['value']:.4f}",
                          f"{t['val_best'] - st['val_best']:.4f}", f"{t['value'] - st['value']:.4f}"]
            else:
                cells += ["-"] * 4
            out.append("| " + " | ".join(cells) + " |")
        if student:
            st = next(iter(student.values()))
            tp = teacher[next(iter(student))]["params_with_head"]
            out += ["", f"Parameters incl. heads at {next(iter(student))} bits: teacher "
                    f"{tp:,}, student {st['params_with_head']:,}, ratio {tp / st['params_with_head']:.1f}x.", ""]
    return out


def markdown(rows: list[dict]) -> str:
    out = ["# Issue #12: stronger CPU stand-in backbones (`benchmarks/explore_standin.py`)", "",
           "Generated from `explore_standin.json` (every row, with its SimCLR losses and head "
           "validation histories). mAP@1000 on the **validation** split (5,000 queries vs the "
           "60,000-image database) unless a table says `query`. One thread per job on a shared "
           "2-core machine: wall seconds depend on the load.", ""]
    base = [r for r in rows if r["stage"] == "baseline"]
    if base:
        out += ["## Raw-pixel references (val)", "", "| dataset | method | 16 bits | 32 bits | 64 bits |",
                "|---|---|---|---|---|"]
        for ds in sorted({r["dataset"] for r in base}):
            for name in ("lsh_raw_pixels", "itq_raw_pixels"):
                vals = {r["bits"]: r["value"] for r in base
                        if r["candidate"] == name and r["dataset"] == ds}
                if vals:
                    out.append(f"| {ds} | {name} | " + " | ".join(
                        f"{vals[b]:.4f}" if b in vals else "-" for b in (16, 32, 64)) + " |")
            for r in base:
                if r["dataset"] == ds and r["measure"] == "cosine_map_continuous":
                    out.append(f"| {ds} | raw pixels, cosine ranking of the pixel vectors (not a "
                               f"hash) | {r['value']:.4f} | | |")
        out.append("")
    proxy = [r for r in rows if r["stage"] in ("proxy", "followup")]
    if proxy:
        out += ["## Candidates (quick proxy: SimCLR on a seeded draw of database images; "
                "follow-up rows: after the final runs)", "",
                "| candidate | role | backbone | kwargs | SimCLR recipe | pool | SimCLR wall s | "
                "measure | bits | head hidden | val mAP | best epoch / run | params (backbone / with head) |",
                "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in proxy:
            measure = ("cosine (continuous)" if r["measure"] == "cosine_map_continuous"
                       else "CIBHash head")
            be = f"{r['best_epoch']} / {r['epochs_run']}" if "best_epoch" in r else "-"
            out.append(f"| {r['candidate']} | {r['role']} | {r['backbone']} | {json.dumps(r['kw'])} | "
                       f"{_recipe(r['ssl'])} | {r['pool']['n_images']:,} | {r['ssl_seconds']:.0f} | "
                       f"{measure} | {r.get('bits', '-')} | {r.get('head_hidden') or '-'} | "
                       f"{r['value']:.4f} | {be} | {_fmt_params(r)} |")
        out.append("")
    timing = [r for r in rows if r["stage"] == "timing"]
    if timing:
        out += ["## Cost per image (forward, frozen backbone, 1 thread, batch 250)", "",
                "| backbone | kwargs | params | image | MFLOPs / image | s per 1,000 images |",
                "|---|---|---|---|---|---|"]
        for r in timing:
            if r["measure"] == "forward_s_per_1k_images":
                out.append(f"| {r['candidate']} | {json.dumps(r['kw'])} | {r['backbone_params']:,} | "
                           f"{r['dataset']} | {r['flops'] / 1e6:.1f} | {r['value']:.3f} |")
        out += ["", "SimCLR training cost (process CPU seconds per 60,000 image pairs, forward + "
                "backward + Adam, augmentation not included, 1 thread):", "",
                "| backbone | kwargs | float32 | bf16 autocast |", "|---|---|---|---|"]
        for r in timing:
            if r["measure"] == "simclr_cpu_s_per_60k_pairs":
                out.append(f"| {r['candidate']} | {json.dumps(r['kw'])} | {r['fp32']:.0f} | "
                           f"{r['bf16']:.0f} |")
        out.append("")
    final = [r for r in rows if r["stage"] == "final"]
    out += _summary(rows)
    for split in ("val", "query"):
        sel = [r for r in final if r["split"] == split]
        if not sel:
            continue
        out += [f"## Final recipe, full pretraining: {'VALIDATION' if split == 'val' else 'TEST QUERIES (run once)'}", "",
                "| dataset | model | backbone | kwargs | head hidden | bits | mAP@K | val mAP of the same head | best epoch / run | "
                "params (backbone / with head) |", "|---|---|---|---|---|---|---|---|---|---|"]
        for r in sel:
            be = f"{r['best_epoch']} / {r['epochs_run']}" if "best_epoch" in r else "-"
            vb = f"{r['val_best']:.4f}" if isinstance(r.get("val_best"), float) else "-"
            out.append(f"| {r['dataset']} | {r['candidate']} | {r.get('backbone', '-')} | "
                       f"{json.dumps(r.get('kw', {}))} | {r.get('head_hidden') or '-'} | "
                       f"{r.get('bits', '-')} | {r['value']:.4f} | {vb} | {be} | {_fmt_params(r)} |")
        out.append("")
    return "\n".join(out) + "\n"


def cmd_report(args) -> None:
    """Rewrite the markdown from the committed JSON rows (no computation)."""
    save_rows(load_rows())


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("command", choices=["run", "baselines", "timing", "final-pretrain", "final-eval", "report"])
    p.add_argument("names", nargs="*")
    p.add_argument("--dataset", default="fashion", choices=["fashion", "digits"])
    p.add_argument("--bits", nargs="+", type=int, default=[32])
    p.add_argument("--head-epochs", type=int, default=300)
    p.add_argument("--eval-every", type=int, default=10)
    p.add_argument("--patience", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--cache-dir", default=os.path.join(REPO, ".cache", "standin"))
    p.add_argument("--weights-dir", default=os.path.join(REPO, "brcd_lib", "weights"))
    p.add_argument("--test", action="store_true", help="final-eval: also the test queries (once)")
    return p


def main(argv: list[str]) -> None:
    import logging

    args = get_args_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s",
                        datefmt="%H:%M:%S")
    for noisy in ("matplotlib", "PIL"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    torch.set_num_threads(args.threads)
    {"run": cmd_run, "baselines": cmd_baselines, "timing": cmd_timing,
     "final-pretrain": cmd_final_pretrain, "final-eval": cmd_final_eval,
     "report": cmd_report}[args.command](args)


if __name__ == "__main__":
    main(sys.argv[1:])
