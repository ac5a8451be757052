"""What the feature caches buy and what they cost: cached vs uncached student training.

Both backbones are frozen in the paper's configuration, so the kit trains the hash heads on
cached backbone outputs (``brcd_lib.training.features``): exact clean features of the evaluation sets, and
a finite bank of ``TrainConfig.feature_views`` augmented views of each training image
(``feature_views = 0`` turns the bank off: fresh augmentations through both backbones every step).

Part ``speed`` -- seconds per training epoch with the paper's backbones (EfficientNet-B0 student,
ViT-B/16 teacher, random weights, 224 px, 64 bits) on ``--n-images`` random images, batch 64:

* uncached: per step, two augmented views (``paper_train_transform``) of each image through both
  backbones (``engine.ImagePairSource``), heads, CIBHash + the BRCD loss, backward, Adam step.
  A ViT-B/16 forward is slow on a shared CPU, so by default only ``--uncached-steps`` steps of
  ``--uncached-batch`` images are timed after one warm-up step and the per-image cost (median
  step) is extrapolated linearly to an epoch of ``--n-images`` images (the CSV says so);
  ``--uncached-full-epoch`` times a real epoch instead.
* cached: the same heads, objective, distiller and optimiser on a bank of features
  (``engine.BankPairSource``; the features are random with the backbones' output sizes, which
  does not change the cost of the heads and losses), median of ``--cached-epochs`` epochs after
  one warm-up epoch.
* bank: the one-off cost of building the bank, ``feature_views`` x (augmentation + student
  encode + teacher encode) per image, timed through ``FeatureStore.views`` on a few images and
  extrapolated; plus the break-even point in epochs.

Part ``map`` -- test mAP of the BRCD student trained cached (the profile's ``feature_views``) vs
uncached (``dataclasses.replace(student_train, feature_views=0)``), both paradigms, seeds
``--seeds``, through ``brcd_lib.experiments.experiment.Experiment`` in a separate cache folder (``--cache-dir``,
never the repository's ``.cache``). The pretrained backbones and the trained teacher are inputs
shared by both arms; they are copied (read-only) from ``--reuse-from`` when present, as the
content-keyed caches verify them on load. Finished runs in ``--cache-dir`` are reused (marked
``reused`` with their original wall time), so an interrupted study resumes.

    python -m benchmarks.bench_cache [--parts speed map] [--quick] [--out-dir DIR]

writes ``cache.csv`` / ``cache.md`` (summary) and ``cache_map.csv`` (one row per run and paradigm).
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime as _dt
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Sequence

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks.run import DEFAULT_OUT, machine_notes, markdown_table, write_outputs  # noqa: E402

SPEEDUP_TARGET = 20.0
MAP_TOLERANCE = 0.01
SUMMARY_FIELDS = ["part", "quantity", "value", "unit", "target", "met", "notes"]
MAP_FIELDS = ["profile", "arm", "feature_views", "bits", "seed", "paradigm", "map",
              "train_wall_s", "epochs_run", "reused", "timestamp", "notes"]
PARADIGMS = ("symmetric", "asymmetric")


# ---------------------------------------------------------------------------------------------
# part "speed": seconds per epoch with the paper's backbones
# ---------------------------------------------------------------------------------------------
def _random_images(n: int, size: int, seed: int):
    """An ArrayImageSet of ``n`` random uint8 RGB images (one dummy class)."""
    import torch

    from brcd_lib.data.base import ArrayImageSet

    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=g)
    return ArrayImageSet(images=images, labels=np.ones((n, 1), dtype=np.uint8), name="random")


def _prepared_distiller(name: str, *, n_train: int, code_length: int, seed: int):
    """The distiller ``name``, prepared on random +-1 teacher codes of ``n_train`` images."""
    import torch

    from brcd_lib.distill import get_distiller
    from brcd_lib.training.engine import make_context

    g = torch.Generator().manual_seed(seed)
    codes = torch.where(torch.rand(n_train, code_length, generator=g) < 0.5, 1.0, -1.0)
    distiller = get_distiller(name)
    distiller.prepare(make_context(teacher_train_codes=codes, seed=seed, cache_dir=None,
                                   cache_key="bench"))
    return distiller


def _timed_epochs(source, *, net, objective, teacher, distiller, batch_size: int, epochs: int,
                  seed: int, max_steps: int | None = None) -> tuple[list[float], list[float]]:
    """Train like ``engine.fit`` (no validation); returns (seconds per step, seconds per epoch).
    A step's time includes producing its batch (augmentation and backbones when uncached)."""
    import torch

    from brcd_lib.training import engine

    params = [p for p in net.parameters() if p.requires_grad]
    params += [p for p in distiller.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=1e-3)
    net.train()
    distiller.train()
    steps, epoch_times = [], []
    for epoch in range(epochs):
        t_epoch = t = time.perf_counter()
        for i, pb in enumerate(source.epoch(epoch=epoch, seed=seed, batch_size=batch_size)):
            loss = engine._step_loss(net, objective, pb, teacher, distiller, 1.0, False)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            now = time.perf_counter()
            steps.append(now - t)
            t = now
            if max_steps is not None and i + 1 >= max_steps:
                break
        epoch_times.append(time.perf_counter() - t_epoch)
    return steps, epoch_times


def _bank_seconds_per_view_image(net, dataset, *, size: int, seed: int) -> float:
    """Seconds per image of one bank view (augmentation + backbone), via ``FeatureStore.views``."""
    from brcd_lib.data.transforms import paper_train_transform
    from brcd_lib.training.features import FeatureStore

    store = FeatureStore(cache_dir=tempfile.gettempdir(), enabled=False)  # memory only
    ds = dataset.with_transform(paper_train_transform(size))
    t0 = time.perf_counter()
    store.views(net, ds, n_views=1, seed=seed, split_hash="bench", transform_desc="bench",
                progress=False)
    return (time.perf_counter() - t0) / len(ds)


def speed_rows(args) -> list[dict]:
    import torch

    from brcd_lib.data.transforms import TwoViews, paper_train_transform
    from brcd_lib.training.sources import BankPairSource, ImagePairSource
    from brcd_lib.models import build_hashing_network, get_objective

    torch.manual_seed(args.seed)
    L, size, n, B = args.code_length, args.image_size, args.n_images, args.batch_size
    student = build_hashing_network(role="student", backbone=args.student, code_length=L,
                                    pretrained=False)
    teacher = build_hashing_network(role="teacher", backbone=args.teacher, code_length=L,
                                    pretrained=False)
    objective = get_objective("cibhash")
    load = machine_notes(args.threads)
    n_epoch_images = (n // B) * B if n >= B else n  # drop_last, as ImagePairSource does

    # ---- uncached
    if args.uncached_full_epoch:
        ub, n_steps, warm = B, None, 0
        ds = _random_images(n, size, args.seed)
    else:
        ub, n_steps, warm = args.uncached_batch, args.uncached_steps + 1, 1
        ds = _random_images(ub * n_steps, size, args.seed)
    source = ImagePairSource(dataset=ds.with_transform(TwoViews(paper_train_transform(size))),
                             student_features=student.features,
                             teacher_features=teacher.features)
    distiller = _prepared_distiller(args.distiller, n_train=n, code_length=L, seed=args.seed)
    steps, epochs = _timed_epochs(source, net=student, objective=objective, teacher=teacher,
                                  distiller=distiller, batch_size=ub, epochs=1, seed=args.seed)
    if args.uncached_full_epoch:
        uncached = epochs[0]
        u_note = f"one real epoch of {n} images at batch {B} ({len(steps)} steps)"
    else:
        per_image = statistics.median(steps[warm:]) / ub
        uncached = per_image * n_epoch_images
        u_note = (f"EXTRAPOLATED: median of {len(steps) - warm} timed steps of batch {ub} "
                  f"(after {warm} warm-up step; step times {', '.join(f'{s:.1f}' for s in steps)} "
                  f"s) = {per_image:.3f} s per image, x {n_epoch_images} images; assumes cost "
                  f"linear in the batch size")
    print(f"uncached: {uncached:.1f} s/epoch", flush=True)

    # ---- cached (bank of random features with the backbones' output sizes)
    g = torch.Generator().manual_seed(args.seed)
    V = args.n_views
    bank = BankPairSource(
        student_bank=torch.randn(V, n, student.backbone.out_dim, generator=g),
        teacher_bank=torch.randn(V, n, teacher.backbone.out_dim, generator=g))
    net_c = build_hashing_network(role="student", backbone=args.student, code_length=L,
                                  pretrained=False)
    distiller_c = _prepared_distiller(args.distiller, n_train=n, code_length=L, seed=args.seed)
    _, c_epochs = _timed_epochs(bank, net=net_c, objective=objective, teacher=teacher,
                                distiller=distiller_c, batch_size=B,
                                epochs=args.cached_epochs + 1, seed=args.seed)
    cached = statistics.median(c_epochs[1:])
    print(f"cached: {cached:.4f} s/epoch", flush=True)

    # ---- one-off cost of the bank
    probe = _random_images(args.bank_probe_images, size, args.seed + 1)
    s_img = _bank_seconds_per_view_image(student, probe, size=size, seed=args.seed)
    t_img = _bank_seconds_per_view_image(teacher, probe, size=size, seed=args.seed)
    bank_s = V * n * (s_img + t_img)
    speedup = uncached / cached
    saved = uncached - cached
    common = (f"{args.student} student / {args.teacher} teacher, random weights, {size} px, "
              f"{L} bits, distiller {args.distiller!r}, batch {B}, {n} random images; {load}")
    return [
        dict(part="speed", quantity="uncached_seconds_per_epoch", value=uncached, unit="s",
             notes=f"{u_note}; {common}"),
        dict(part="speed", quantity="cached_seconds_per_epoch", value=cached, unit="s",
             notes=f"median of {args.cached_epochs} epochs after 1 warm-up epoch "
                   f"({', '.join(f'{e:.4f}' for e in c_epochs)} s); bank of {V} views; {common}"),
        dict(part="speed", quantity="speedup_cached_vs_uncached", value=speedup, unit="x",
             target=f">= {SPEEDUP_TARGET:g}", met=speedup >= SPEEDUP_TARGET,
             notes="uncached / cached seconds per epoch, both measured in this run"),
        dict(part="speed", quantity="bank_build_seconds", value=bank_s, unit="s",
             notes=f"EXTRAPOLATED one-off cost: {V} views x {n} images x (student "
                   f"{s_img:.3f} + teacher {t_img:.3f} s per image incl. augmentation, timed on "
                   f"{len(probe)} images through FeatureStore.views); the clean features of the "
                   "evaluation sets are needed by both paths and are not counted"),
        dict(part="speed", quantity="break_even_epochs", value=bank_s / saved if saved > 0
             else float("inf"), unit="epochs",
             notes="bank cost / (uncached - cached seconds per epoch): after this many epochs "
                   "the cached path is ahead"),
    ]


# ---------------------------------------------------------------------------------------------
# part "map": cached vs uncached training of the BRCD student on a CPU profile
# ---------------------------------------------------------------------------------------------
def seed_cache(cache_dir: Path, reuse_from: Path | None, profile: str) -> list[str]:
    """Copy the pretrained backbones and trained teachers of ``profile`` (inputs shared by both
    arms) from ``reuse_from`` into ``cache_dir``; never writes to ``reuse_from``. Returns what
    was copied."""
    copied: list[str] = []
    if reuse_from is None or not reuse_from.is_dir():
        return copied
    if reuse_from.resolve() == cache_dir.resolve():
        raise ValueError(f"--reuse-from and --cache-dir are the same folder ({cache_dir}); the "
                         "benchmark must train in its own cache folder")
    for src in sorted((reuse_from / "pretrain").glob("ssl_*.pt")):
        dst = cache_dir / "pretrain" / src.name
        if not dst.exists():
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)
            copied.append(f"pretrain/{src.name}")
    for run in sorted((reuse_from / "runs" / profile).glob("teacher-*")):
        if not ((run / "result.json").exists() and (run / "best.pt").exists()):
            continue  # unfinished teacher: let the benchmark train its own
        dst = cache_dir / "runs" / profile / run.name
        if not (dst / "result.json").exists():
            dst.mkdir(parents=True, exist_ok=True)
            for name in ("best.pt", "result.json"):  # result.json last: it marks a finished run
                shutil.copy2(run / name, dst / name)
            copied.append(f"runs/{profile}/{run.name}")
    return copied


def map_rows(args, *, write_partial) -> tuple[list[dict], list[dict]]:
    """(per-run rows, summary rows) of the cached-vs-uncached mAP study."""
    from brcd_lib.experiments.experiment import Experiment

    cache_dir = Path(args.cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    copied = seed_cache(cache_dir, args.reuse_from, args.profile)
    exp = Experiment(args.profile, cache_dir=str(cache_dir), progress=False)
    prof = exp.profile
    cached_train = prof.student_train
    if args.epochs is not None:
        cached_train = dataclasses.replace(cached_train, epochs=args.epochs)
    if cached_train.feature_views < 2:
        raise ValueError(f"profile {prof.name!r} trains students without a view bank "
                         f"(feature_views={cached_train.feature_views}); nothing to compare")
    arms = {"cached": cached_train,
            "uncached": dataclasses.replace(cached_train, feature_views=0)}
    bits = args.bits or prof.sensitivity_bits
    started = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    reuse_note = (f"pretrained backbones / teachers copied read-only from {args.reuse_from}: "
                  f"{len(copied)} items" if copied else "nothing copied from another cache")
    protocol = (f"profile {prof.name}, BRCD student {prof.student.backbone.name} <- teacher "
                f"{prof.teacher.backbone.name}, {bits} bits, {cached_train.epochs} epochs max "
                f"(eval every {cached_train.eval_every}, patience {cached_train.patience})"
                + (" REDUCED from the profile's " + str(prof.student_train.epochs)
                   if args.epochs is not None and args.epochs != prof.student_train.epochs else ""))
    t0 = time.perf_counter()
    teacher = exp.teacher(bits)
    teacher_s = time.perf_counter() - t0
    # the view banks both nets need in the cached arm (shared by every seed: the bank depends on
    # the frozen backbone only); built here so the runs below do not include them
    n_before = len(list((cache_dir / "features").glob("*.pt")))
    t0 = time.perf_counter()
    student_net = exp.build_network(prof.student, bits, role="student", seed=args.seeds[0])
    for net in (student_net, teacher.net):
        exp.view_bank(net, cached_train.feature_views)
    bank_s = time.perf_counter() - t0
    bank_built = len(list((cache_dir / "features").glob("*.pt"))) > n_before
    rows: list[dict] = []
    # with Profile.workers > 1 (fashion: 2) the runs train in worker processes first; the loop
    # below then loads them (each record keeps the wall time of its own training)
    from brcd_lib.experiments.studies import prefetch_students

    prefetch_students(exp, [dict(bits=bits, method="brcd", seed=seed, train=train)
                            for seed in args.seeds for train in arms.values()],
                      desc="cached vs uncached")
    for seed in args.seeds:
        for arm, train in arms.items():
            t0 = time.perf_counter()
            run = exp.student(bits, method="brcd", seed=seed, train=train)
            elapsed = time.perf_counter() - t0
            rec = run.record
            reused = rec["timestamp"] < started
            for paradigm in PARADIGMS:
                rows.append(dict(
                    profile=prof.name, arm=arm, feature_views=train.feature_views, bits=bits,
                    seed=seed, paradigm=paradigm, map=float(run.metrics[paradigm]),
                    train_wall_s=float(rec["wall_s"]), epochs_run=rec["epochs_run"],
                    reused=reused, timestamp=rec["timestamp"],
                    notes=f"{protocol}; call took {elapsed:.1f} s"
                          + ("; finished run reused from --cache-dir" if reused else "")
                          + f"; {machine_notes(args.threads)}"))
            print(f"{arm} seed {seed}: {run.metrics} ({rec['wall_s']:.0f} s)", flush=True)
            write_partial(rows)
    summary = []
    means = {}
    for arm in arms:
        for paradigm in PARADIGMS:
            vals = [r["map"] for r in rows if r["arm"] == arm and r["paradigm"] == paradigm]
            means[arm, paradigm] = float(np.mean(vals))
            summary.append(dict(part=f"map/{prof.name}", quantity=f"{arm}_{paradigm}_map_mean",
                                value=means[arm, paradigm], unit="mAP",
                                notes=f"mean of {len(vals)} seeds {list(args.seeds)} "
                                      f"(std {np.std(vals):.4f}); {protocol}"))
        walls = [r["train_wall_s"] for r in rows
                 if r["arm"] == arm and r["paradigm"] == PARADIGMS[0]]
        summary.append(dict(part=f"map/{prof.name}", quantity=f"{arm}_train_wall_s_mean",
                            value=float(np.mean(walls)), unit="s",
                            notes=f"Experiment.student wall time per run (training + validation + "
                                  f"test), mean of {len(walls)} runs"
                                  + ("; view banks built beforehand (see bank row)"
                                     if arm == "cached" else "")))
    summary.append(dict(part=f"map/{prof.name}", quantity="cached_bank_build_s", value=bank_s, unit="s",
                        notes=(f"{cached_train.feature_views} views x {len(exp.splits.train)} "
                               "training images through the student and the teacher backbone, "
                               "once for all seeds") if bank_built else
                              "the view banks were already in --cache-dir (loaded, not built)"))
    for paradigm in PARADIGMS:
        diff = means["cached", paradigm] - means["uncached", paradigm]
        summary.append(dict(part=f"map/{prof.name}", quantity=f"cached_minus_uncached_{paradigm}", value=diff,
                            unit="mAP", target=f"|diff| <= {MAP_TOLERANCE}",
                            met=abs(diff) <= MAP_TOLERANCE,
                            notes=f"difference of the seed means; teacher ready in "
                                  f"{teacher_s:.0f} s; {reuse_note}"))
    return rows, summary


# ---------------------------------------------------------------------------------------------
# output
# ---------------------------------------------------------------------------------------------
def markdown(summary: list[dict], map_rows_: list[dict], args, elapsed: float) -> str:
    lines = ["# Feature caches: cached vs uncached student training", "",
             f"Generated by `benchmarks/bench_cache.py` in {elapsed:.0f} s"
             f"{' (--quick)' if args.quick else ''} on {machine_notes(args.threads)} (the CPU is "
             "shared with other jobs: absolute times move with the load, ratios are measured "
             "within this run). Rows marked EXTRAPOLATED in `cache.csv` were not timed in "
             "full; the CSV notes say how they were obtained.", ""]
    kept = sorted({r["part"] for r in summary} - _rerun_parts(args))
    if kept:
        lines += [f"Part(s) {', '.join(kept)}: kept from the previous output (not rerun by "
                  "this invocation).", ""]
    if summary:
        lines += [markdown_table(summary, ["part", "quantity", "value", "unit", "target", "met"],
                                 {"value": ".4g"}), ""]
    if map_rows_:
        lines += ["Per run (test mAP, `cache_map.csv`):", "",
                  markdown_table(map_rows_, ["profile", "arm", "feature_views", "bits", "seed",
                                             "paradigm", "map", "train_wall_s", "epochs_run",
                                             "reused"],
                                 {"map": ".4f", "train_wall_s": ".0f"}), ""]
        for profile in dict.fromkeys(r["profile"] for r in map_rows_):
            first = next(r for r in map_rows_ if r["profile"] == profile)
            lines.append(f"Protocol ({profile}): {first['notes'].split('; call took')[0]}.")
    return "\n".join(lines) + "\n"


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Cached vs uncached student training (speed, mAP).")
    p.add_argument("--parts", nargs="+", default=["speed", "map"], choices=["speed", "map"])
    p.add_argument("--quick", action="store_true",
                   help="speed: 1 timed uncached step of 4 images; map: 1 seed, 10 epochs")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads (1: on a loaded CPU, 2 OpenMP threads wait on each other)")
    p.add_argument("--seed", type=int, default=0)
    g = p.add_argument_group("speed")
    g.add_argument("--student", default="efficientnet_b0")
    g.add_argument("--teacher", default="vit_b_16")
    g.add_argument("--code-length", type=int, default=64)
    g.add_argument("--image-size", type=int, default=224)
    g.add_argument("--n-images", type=int, default=256)
    g.add_argument("--batch-size", type=int, default=64)
    g.add_argument("--n-views", type=int, default=8, help="views in the bank")
    g.add_argument("--distiller", default="brcd")
    g.add_argument("--uncached-batch", type=int, default=8)
    g.add_argument("--uncached-steps", type=int, default=2, help="timed steps after 1 warm-up")
    g.add_argument("--uncached-full-epoch", action="store_true",
                   help="time a real uncached epoch of --n-images at --batch-size")
    g.add_argument("--cached-epochs", type=int, default=5, help="timed epochs after 1 warm-up")
    g.add_argument("--bank-probe-images", type=int, default=4)
    g = p.add_argument_group("map")
    g.add_argument("--profile", default="digits")
    g.add_argument("--bits", type=int, default=None, help="default: the profile's sensitivity bits")
    g.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    g.add_argument("--epochs", type=int, default=None,
                   help="override the profile's student epochs in both arms (a reduced protocol)")
    g.add_argument("--cache-dir", type=Path,
                   default=Path(tempfile.gettempdir()) / "brcd-bench-cache",
                   help="the study's own cache folder (finished runs are reused from it)")
    g.add_argument("--reuse-from", type=Path, default=REPO / ".cache",
                   help="copy pretrained backbones and teachers from this cache (read-only)")
    g.add_argument("--no-reuse", dest="reuse_from", action="store_const", const=None)
    p.add_argument("--out-dir", type=Path, default=DEFAULT_OUT)
    return p


def _rerun_parts(args) -> set[str]:
    """Summary parts this invocation regenerates (``map`` is kept per profile)."""
    return ({"speed"} if "speed" in args.parts else set()) | (
        {f"map/{args.profile}"} if "map" in args.parts else set())


def _normalise_part(row: dict) -> dict:
    """Rows written before the map study was kept per profile say ``map``; name their profile."""
    if row.get("part") == "map":
        found = re.search(r"profile (\w+),", row.get("notes") or "")
        row["part"] = f"map/{found.group(1) if found else 'digits'}"
    return row


def _read_csv(path: Path) -> list[dict]:
    """Rows of an earlier output (to keep the parts this invocation does not rerun)."""
    import csv

    if not path.exists():
        return []
    with open(path, encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    for row in rows:
        for key in ("value", "map", "train_wall_s"):
            if row.get(key) not in (None, ""):
                row[key] = float(row[key])
    return rows


def main(argv: Sequence[str] | None = None) -> list[dict]:
    import torch

    from benchmarks.run import csv_text
    from brcd_lib.io import atomic_write_text

    args = get_args_parser().parse_args(argv)
    if args.quick:
        args.uncached_batch, args.uncached_steps, args.cached_epochs = 4, 1, 3
        args.bank_probe_images = 2
        args.seeds = args.seeds[:1]
        args.epochs = args.epochs or 10
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    # parts not rerun keep their rows from the previous output
    # parts (and other profiles' map studies) not rerun keep their rows from the previous output
    summary = [r for r in map(_normalise_part, _read_csv(args.out_dir / "cache.csv"))
               if r["part"] not in _rerun_parts(args)]
    runs = [r for r in _read_csv(args.out_dir / "cache_map.csv")
            if "map" not in args.parts or r["profile"] != args.profile]
    kept_runs = list(runs)

    def write(rows_map: list[dict], rows_summary: list[dict]) -> None:
        text = markdown(rows_summary, rows_map, args, time.perf_counter() - t0)
        write_outputs(args.out_dir, "cache", rows_summary, SUMMARY_FIELDS, text)
        if "map" in args.parts:
            atomic_write_text(args.out_dir / "cache_map.csv", csv_text(rows_map, MAP_FIELDS))

    if "speed" in args.parts:
        summary = speed_rows(args) + summary
        write(runs, summary)
    if "map" in args.parts:
        new_runs, map_summary = map_rows(args, write_partial=lambda rows: write(kept_runs + rows,
                                                                                 summary))
        runs = kept_runs + new_runs
        summary = summary + map_summary
    write(runs, summary)
    print(markdown(summary, runs, args, time.perf_counter() - t0))
    return summary


if __name__ == "__main__":
    main()
