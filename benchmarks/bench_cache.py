"""What the feature caches buy and what they cost: cached vs uncached student training, end to end.

Both backbones are frozen in the paper's configuration, so the kit can train the hash heads on
cached backbone outputs (``brcd_lib.training.features``): exact clean features of the evaluation
sets, and a finite bank of ``TrainConfig.feature_views`` augmented views of each training image
(``feature_views = 0`` turns the bank off: fresh augmentations through both backbones every step).

Part ``speed`` -- the paper's backbones (``--student`` EfficientNet-B0, ``--teacher`` ViT-B/16,
random weights, built from the paper profile's model configs as the kit builds them, on the CPU in
float32), the paper profile's training transform at 224 px on generated CIFAR-10-shaped images
(32 px uint8), 64 bits, the BRCD distiller with the paper profile's settings, the SAME batch size
``--batch-size`` (64) in both arms, an epoch of ``--n-images`` images (default: the paper
protocol's training set, from the CIFAR-10 protocol defaults):

* uncached: per step, two augmented views of each image through both backbones
  (``engine.ImagePairSource``), heads, CIBHash + the BRCD loss, backward, Adam step. A ViT-B/16
  forward is slow on a shared CPU, so by default 1 warm-up step and ``--uncached-steps`` (>= 2)
  timed steps are run and the median step's per-image cost is extrapolated linearly to the epoch
  (labelled EXTRAPOLATED); ``--uncached-full-epoch`` times a real epoch instead.
* cached: the same heads, objective, distiller and optimiser on a bank of features
  (``engine.BankPairSource``; random features with the backbones' output sizes, which does not
  change the cost of the heads and losses), a full epoch of ``--n-images`` images, median of
  ``--cached-epochs`` epochs after one warm-up epoch.
* bank build: ``--n-views`` views x (augmentation + student forward + teacher forward) per image,
  timed through ``FeatureStore.views`` per backbone on ``--bank-probe-images`` images and
  extrapolated linearly (EXTRAPOLATED); it is INCLUDED in every end-to-end comparison.
* end to end, one run of E epochs (the paper profile's ``student_train.epochs``):
  E x uncached epoch vs bank build + E x cached epoch;
* end to end, the paper profile's grid: its N student runs (``preflight.run_plan("paper")``):
  N x E x uncached epoch vs the build of the distinct banks (one per backbone and rotation,
  ``preflight._workload``'s rule; ``benchmarks.paper_grid``) + N x E x cached epoch.

Part ``map`` -- test mAP of the BRCD student trained cached (the profile's ``feature_views``) vs
uncached (``dataclasses.replace(student_train, feature_views=0)``), both paradigms, seeds
``--seeds``, through ``brcd_lib.experiments.experiment.Experiment`` in the study's own cache
folder (``--cache-dir``; never the kit's default cache). The pretrained backbones and the trained
teacher are inputs shared by both arms; they are copied (read-only) from ``--reuse-from`` when
present. The feature caches are never copied: once the teacher is ready the study empties
``<cache-dir>/features``, builds the inputs both arms read (the teacher's codes of the training
set and the database, the student's clean features of the evaluation sets; timed, reported, in
neither arm's total) and then the cached arm's view banks from cold (timed, included in the
cached arm's end-to-end times). Finished runs in ``--cache-dir`` are reused (marked ``reused``
with their original wall time), so an interrupted study resumes.

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

from benchmarks import paper_grid  # noqa: E402
from benchmarks.run import DEFAULT_OUT, machine_notes, markdown_table, write_outputs  # noqa: E402

SPEEDUP_TARGET = 20.0
MAP_TOLERANCE = 0.01
SUMMARY_FIELDS = ["part", "quantity", "value", "unit", "target", "met", "notes"]
MAP_FIELDS = ["profile", "arm", "feature_views", "bits", "seed", "paradigm", "map",
              "train_wall_s", "epochs_run", "reused", "timestamp", "notes"]
PARADIGMS = ("symmetric", "asymmetric")
CIFAR_SIZE = 32  # CIFAR-10 images are stored at 32 px; the paper transform resizes them


# ---------------------------------------------------------------------------------------------
# part "speed": the paper's backbones, per epoch and end to end
# ---------------------------------------------------------------------------------------------
def end_to_end_rows(*, uncached_epoch_s: float, cached_epoch_s: float, run_bank_s: float,
                    grid_banks_s: float, epochs: int, runs: int, u_label: str,
                    run_note: str, grid_note: str) -> list[dict]:
    """The end-to-end rows of part ``speed`` (one run and the grid), from measured inputs."""
    one = paper_grid.one_run_totals(epochs=epochs, uncached_epoch_s=uncached_epoch_s,
                                    cached_epoch_s=cached_epoch_s, bank_build_s=run_bank_s)
    grid = paper_grid.grid_totals(runs=runs, epochs=epochs, uncached_epoch_s=uncached_epoch_s,
                                  cached_epoch_s=cached_epoch_s, banks_build_s=grid_banks_s)
    target = f">= {SPEEDUP_TARGET:g}"
    e_note = f"E = {epochs} epochs, every epoch run (early stopping ignored: an upper bound)"
    return [
        dict(part="speed", quantity="run_uncached_end_to_end_s", value=one["uncached_s"],
             unit="s", notes=f"{u_label}E x uncached seconds per epoch; {e_note}; {run_note}"),
        dict(part="speed", quantity="run_cached_end_to_end_s", value=one["cached_s"], unit="s",
             notes=f"EXTRAPOLATED: bank build ({run_bank_s:.4g} s) + E x cached seconds per "
                   f"epoch; {e_note}; {run_note}"),
        dict(part="speed", quantity="run_end_to_end_ratio", value=one["ratio"], unit="x",
             target=target, met=one["ratio"] >= SPEEDUP_TARGET,
             notes="run_uncached_end_to_end_s / run_cached_end_to_end_s (bank build included)"),
        dict(part="speed", quantity="grid_uncached_end_to_end_s", value=grid["uncached_s"],
             unit="s", notes=f"{u_label}N x E x uncached seconds per epoch, N = {runs} student "
                             f"runs; {e_note}; {grid_note}"),
        dict(part="speed", quantity="grid_cached_end_to_end_s", value=grid["cached_s"], unit="s",
             notes=f"EXTRAPOLATED: distinct banks' build ({grid_banks_s:.4g} s) + N x E x "
                   f"cached seconds per epoch, N = {runs}; {e_note}; {grid_note}"),
        dict(part="speed", quantity="grid_end_to_end_ratio", value=grid["ratio"], unit="x",
             target=target, met=grid["ratio"] >= SPEEDUP_TARGET,
             notes="grid_uncached_end_to_end_s / grid_cached_end_to_end_s (bank builds included)"),
    ]


def _bank_model(paper, name: str, teachers: set[str]):
    """The paper profile's teacher or student config with backbone ``name`` (only its forward
    pass is timed) and the role."""
    from benchmarks.nets import with_backbone

    return (with_backbone(paper.teacher, name), "teacher") if name in teachers else \
        (with_backbone(paper.student, name), "student")


def speed_rows(args) -> list[dict]:
    import torch

    from benchmarks.nets import describe, network_from_config, with_backbone
    from benchmarks.train_steps import (bank_seconds_per_view_image, prepared_distiller,
                                        random_images, timed_epochs)
    from brcd_lib.data.transforms import TwoViews, get_transforms
    from brcd_lib.experiments import plan as kit_plan
    from brcd_lib.experiments.preflight import run_plan
    from brcd_lib.experiments.profiles import get_profile
    from brcd_lib.models import get_objective
    from brcd_lib.training.sources import BankPairSource, ImagePairSource

    paper = get_profile("paper")
    torch.manual_seed(args.seed)
    L, size, n = args.code_length, args.image_size, args.n_images
    B, V = args.batch_size, args.n_views
    if n < B:
        raise ValueError(f"--n-images ({n}) must be at least --batch-size ({B})")
    if V < 2:
        raise ValueError(f"--n-views must be >= 2 (a bank draws two different views), got {V}")
    E = args.run_epochs or paper.student_train.epochs
    transform = get_transforms(paper.data.transform, size=size, train=True)
    s_model = with_backbone(paper.student, args.student)
    t_model = with_backbone(paper.teacher, args.teacher)
    student = network_from_config(s_model, L, role="student")
    teacher = network_from_config(t_model, L, role="teacher")
    objective = get_objective(paper.student.objective, **paper.student.objective_kwargs)
    d_kwargs = kit_plan.distill_kwargs(paper, args.distiller)
    load = machine_notes(args.threads)
    n_epoch_images = (n // B) * B  # drop_last, as ImagePairSource does
    steps_per_epoch = n // B

    # ---- uncached, batch B
    if args.uncached_full_epoch:
        n_steps, warm = None, 0
        ds = random_images(n, args.source_size, args.seed)
    else:
        n_steps, warm = args.uncached_steps + 1, 1
        ds = random_images(B * n_steps, args.source_size, args.seed)
    source = ImagePairSource(dataset=ds.with_transform(TwoViews(transform)),
                             student_features=student.features, teacher_features=teacher.features)
    distiller = prepared_distiller(args.distiller, n_train=max(n, len(ds)), code_length=L,
                                   seed=args.seed, kwargs=d_kwargs)
    steps, epochs = timed_epochs(source, net=student, objective=objective, teacher=teacher,
                                 distiller=distiller, batch_size=B, epochs=1, seed=args.seed,
                                 lr=paper.student_train.lr)
    if args.uncached_full_epoch:
        uncached = epochs[0]
        u_label = ""
        u_note = f"one real epoch of {n} images at batch {B} ({len(steps)} steps)"
    else:
        per_image = statistics.median(steps[warm:]) / B
        uncached = per_image * n_epoch_images
        u_label = "EXTRAPOLATED: "
        u_note = (f"EXTRAPOLATED: median of {len(steps) - warm} timed steps of batch {B} "
                  f"(after {warm} warm-up step; step times {', '.join(f'{s:.1f}' for s in steps)}"
                  f" s) = {per_image:.4f} s per image, x {n_epoch_images} images "
                  f"({steps_per_epoch} steps of {B}); assumes the cost linear in the number of "
                  "steps")
    print(f"uncached: {uncached:.1f} s/epoch", flush=True)

    # ---- cached, batch B, a full epoch (bank of random features with the backbones' sizes)
    g = torch.Generator().manual_seed(args.seed)
    bank = BankPairSource(
        student_bank=torch.randn(V, n, student.backbone.out_dim, generator=g),
        teacher_bank=torch.randn(V, n, teacher.backbone.out_dim, generator=g))
    net_c = network_from_config(s_model, L, role="student", seed=args.seed)
    distiller_c = prepared_distiller(args.distiller, n_train=n, code_length=L, seed=args.seed,
                                     kwargs=d_kwargs)
    _, c_epochs = timed_epochs(bank, net=net_c, objective=objective, teacher=teacher,
                               distiller=distiller_c, batch_size=B,
                               epochs=args.cached_epochs + 1, seed=args.seed,
                               lr=paper.student_train.lr)
    cached = statistics.median(c_epochs[1:])
    print(f"cached: {cached:.4f} s/epoch", flush=True)

    # ---- the bank build: seconds per augmented image of every backbone a bank is built for
    plan = run_plan(paper)
    runs = paper_grid.student_runs(plan)
    teachers = {paper_grid.teacher_backbone(r) for r in runs}
    banks = paper_grid.distinct_banks(paper, plan, V)
    probe = random_images(args.bank_probe_images, args.source_size, args.seed + 1)
    per_img: dict[str, float] = {}
    for name in dict.fromkeys([args.student, args.teacher, *sorted({b for b, _, _ in banks})]):
        model, role = _bank_model(paper, name, {args.teacher, *teachers})
        net = student if name == args.student else teacher if name == args.teacher else \
            network_from_config(model, L, role=role)
        per_img[name] = bank_seconds_per_view_image(net, probe, transform=transform,
                                                    seed=args.seed)
        print(f"bank view of {name}: {per_img[name]:.4f} s per image", flush=True)
    run_bank = V * n * (per_img[args.student] + per_img[args.teacher])
    grid_banks = paper_grid.bank_build_seconds(banks, n_train=n, seconds_per_view_image=per_img)

    per_epoch = uncached / cached
    common = (f"{describe(s_model)} student / {describe(t_model)} teacher (paper profile model "
              f"configs), random weights, float32 on the CPU, generated {args.source_size} px "
              f"images through the paper training transform to {size} px, {L} bits, distiller "
              f"{args.distiller!r} {d_kwargs}, batch {B}, epoch of {n} images; {load}")
    probe_note = (f"timed through FeatureStore.views (augmentation + forward, one view) on "
                  f"{len(probe)} generated images after a 2-image warm-up")
    rows = [
        dict(part="speed", quantity="uncached_seconds_per_epoch", value=uncached, unit="s",
             notes=f"{u_note}; {common}"),
        dict(part="speed", quantity="cached_seconds_per_epoch", value=cached, unit="s",
             notes=f"median of {args.cached_epochs} full epochs of {n} images "
                   f"({steps_per_epoch} steps of {B}) after 1 warm-up epoch "
                   f"({', '.join(f'{e:.4f}' for e in c_epochs)} s); bank of {V} views; {common}"),
        dict(part="speed", quantity="per_epoch_ratio", value=per_epoch, unit="x",
             target=f">= {SPEEDUP_TARGET:g}", met=per_epoch >= SPEEDUP_TARGET,
             notes="uncached / cached seconds per epoch at the same batch size, both measured "
                   "in this run; leaves out the bank build (see the end-to-end rows)"),
    ]
    rows += [dict(part="speed", quantity=f"bank_s_per_view_image/{name}", value=v, unit="s",
                  notes=f"{name}: {probe_note}; rotated banks (SSKD) are costed the same")
             for name, v in per_img.items()]
    rows += [
        dict(part="speed", quantity="bank_build_seconds", value=run_bank, unit="s",
             notes=f"EXTRAPOLATED one run's banks: {V} views x {n} images x (student "
                   f"{per_img[args.student]:.4f} + teacher {per_img[args.teacher]:.4f} s per "
                   "image); the clean features of the evaluation sets are needed by both arms "
                   "and are not counted"),
        dict(part="speed", quantity="break_even_epochs",
             value=paper_grid.break_even_epochs(bank_build_s=run_bank, uncached_epoch_s=uncached,
                                                cached_epoch_s=cached), unit="epochs",
             notes="bank build / (uncached - cached seconds per epoch): after this many epochs "
                   "one cached run is ahead"),
        dict(part="speed", quantity="run_epochs", value=E, unit="epochs",
             notes=("the paper profile's student_train.epochs" if args.run_epochs is None
                    else f"--run-epochs {E} (the paper profile trains "
                         f"{paper.student_train.epochs})")),
        dict(part="speed", quantity="grid_student_runs", value=len(runs), unit="runs",
             notes="student runs of preflight.run_plan('paper') (deduplicated as the run cache "
                   "does): " + ", ".join(f"{k} x{v}" for k, v in _run_counts(runs).items())),
        dict(part="speed", quantity="grid_distinct_banks", value=len(banks), unit="banks",
             notes=f"one bank of {V} views per (backbone, rotation) the runs read, shared by "
                   "every run with that backbone (preflight._workload's rule): "
                   + ", ".join(f"{b} r{r}" for b, _, r in sorted(banks))),
        dict(part="speed", quantity="grid_banks_build_s", value=grid_banks, unit="s",
             notes=f"EXTRAPOLATED: sum over the {len(banks)} banks of {V} views x {n} images x "
                   "the backbone's seconds per image (bank_s_per_view_image rows)"),
    ]
    run_note = f"{describe(s_model)} <- {describe(t_model)}"
    others = _run_counts([r for r in runs if r["backbone"] != args.student
                          or paper_grid.teacher_backbone(r) != args.teacher or r["rotations"]])
    grid_note = ("every run costed as the measured run (same student and teacher epoch times); "
                 "not costed separately: " + (", ".join(f"{k} x{v}" for k, v in others.items())
                                              or "none")
                 + " (other backbones, and SSKD's rotated copies, which triple the uncached "
                   "forward passes of its runs); teacher runs not included")
    rows += end_to_end_rows(uncached_epoch_s=uncached, cached_epoch_s=cached, run_bank_s=run_bank,
                            grid_banks_s=grid_banks, epochs=E, runs=len(runs), u_label=u_label,
                            run_note=run_note, grid_note=grid_note)
    return rows


def _run_counts(runs: list[dict]) -> dict[str, int]:
    """{"student <- teacher (rotations)": number of runs}."""
    counts: dict[str, int] = {}
    for r in runs:
        key = (f"{r['backbone']} <- {paper_grid.teacher_backbone(r)}"
               + (f" ({r['rotations']} rotations)" if r["rotations"] else ""))
        counts[key] = counts.get(key, 0) + 1
    return counts


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
    for src in sorted((reuse_from / "pretrain").glob("ssl2_*.pt")):
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


def check_study_cache(cache_dir: Path, reuse_from: Path | None) -> None:
    """The map study empties ``<cache_dir>/features``: refuse the kit's default cache and the
    cache it copies from."""
    from brcd_lib.paths import cache_root

    resolved = cache_dir.resolve()
    if resolved == Path(cache_root()).resolve():
        raise ValueError(f"--cache-dir {cache_dir} is the kit's cache (BRCD_CACHE or .cache); the "
                         "study empties <cache-dir>/features to build its banks from cold, so it "
                         "needs a folder of its own (the default is "
                         f"{Path(tempfile.gettempdir()) / 'brcd-bench-cache'})")
    if reuse_from is not None and resolved == reuse_from.resolve():
        raise ValueError(f"--reuse-from and --cache-dir are the same folder ({cache_dir}); the "
                         "benchmark must train in its own cache folder")


def clear_features(cache_dir: Path) -> int:
    """Remove the feature caches (clean features and view banks) of the study's own cache
    folder; returns the number of files removed."""
    folder = cache_dir / "features"
    files = [f for f in folder.glob("*") if f.is_file()] if folder.is_dir() else []
    for f in files:
        f.unlink()
    return len(files)


def map_end_to_end(*, cached_walls: Sequence[float], uncached_walls: Sequence[float],
                   bank_build_s: dict[int, float],
                   bank_seed_of: dict[int, int]) -> dict[str, float]:
    """End-to-end seconds of the two arms, from the per-run wall times (seed order) and the
    build time of each bank seed's view banks: one run = the mean run + (cached) the banks of one
    seed; the grid = the sum over the seeds + (cached) every distinct bank seed's banks once."""
    if not cached_walls or len(cached_walls) != len(uncached_walls) \
            or len(cached_walls) != len(bank_seed_of):
        raise ValueError("need one cached and one uncached wall time per seed, and the bank seed "
                         "of every seed")
    per_run_bank = float(np.mean([bank_build_s[bank_seed_of[s]] for s in bank_seed_of]))
    out = {"cached_run_s": float(np.mean(cached_walls)) + per_run_bank,
           "uncached_run_s": float(np.mean(uncached_walls)),
           "cached_grid_s": float(np.sum(cached_walls)) + float(sum(bank_build_s.values())),
           "uncached_grid_s": float(np.sum(uncached_walls))}
    out["run_ratio"] = out["uncached_run_s"] / out["cached_run_s"]
    out["grid_ratio"] = out["uncached_grid_s"] / out["cached_grid_s"]
    return out


def map_rows(args, *, write_partial) -> tuple[list[dict], list[dict]]:
    """(per-run rows, summary rows) of the cached-vs-uncached mAP study."""
    from brcd_lib.distill import get_distiller
    from brcd_lib.experiments.experiment import Experiment
    from brcd_lib.experiments.studies import prefetch_students

    cache_dir = Path(args.cache_dir)
    check_study_cache(cache_dir, args.reuse_from)
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
    if get_distiller("brcd", **exp.distill_config("brcd").kwargs).rotations:
        raise ValueError("the study builds the banks of unrotated views only; BRCD with "
                         "rotations is not supported")
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
    exp.teacher(bits)
    teacher_s = time.perf_counter() - t0
    # from cold: no feature cache survives (the teacher's training may have built its bank),
    # and a fresh Experiment holds none in memory
    removed = clear_features(cache_dir)
    exp = Experiment(args.profile, cache_dir=str(cache_dir), progress=False)
    teacher = exp.teacher(bits)
    student_net = exp.build_network(prof.student, bits, role="student", seed=args.seeds[0])
    # inputs both arms read (what Experiment.prepare_inputs builds besides the banks)
    t0 = time.perf_counter()
    for set_name in ("train", "database"):
        exp.codes(teacher.net, set_name)
    for set_name in ("val", "query", "database"):
        exp.features(student_net, set_name)
    shared_s = time.perf_counter() - t0
    # the cached arm's view banks, from cold: one pair per bank seed
    bank_seed_of = {seed: exp.bank_seed(cached_train, seed) for seed in args.seeds}
    bank_build_s: dict[int, float] = {}
    for bank_seed in dict.fromkeys(bank_seed_of.values()):
        t0 = time.perf_counter()
        for net in (student_net, teacher.net):
            exp.view_bank(net, cached_train.feature_views, seed=bank_seed)
        bank_build_s[bank_seed] = time.perf_counter() - t0
    print(f"shared inputs {shared_s:.1f} s; view banks {sum(bank_build_s.values()):.1f} s "
          f"(from cold, {removed} feature file(s) removed first)", flush=True)
    rows: list[dict] = []
    # with several workers (Profile.workers; None = every core) the runs train in worker
    # processes first; the loop below then loads them (each record keeps its own wall time)
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
    return rows, map_summary(rows, prof=prof, arms=arms, seeds=list(args.seeds),
                             protocol=protocol, shared_s=shared_s, bank_build_s=bank_build_s,
                             bank_seed_of=bank_seed_of, workers=exp.workers,
                             extra_note=f"teacher ready in {teacher_s:.0f} s; {reuse_note}")


def map_summary(rows: list[dict], *, prof, arms: dict, seeds: list[int], protocol: str,
                shared_s: float, bank_build_s: dict[int, float], bank_seed_of: dict[int, int],
                workers: int, extra_note: str) -> list[dict]:
    """The summary rows of one profile's map study (means, wall times end to end, differences)."""
    part = f"map/{prof.name}"
    views = arms["cached"].feature_views
    summary, means, walls = [], {}, {}
    for arm in arms:
        for paradigm in PARADIGMS:
            vals = [r["map"] for r in rows if r["arm"] == arm and r["paradigm"] == paradigm]
            means[arm, paradigm] = float(np.mean(vals))
            summary.append(dict(part=part, quantity=f"{arm}_{paradigm}_map_mean",
                                value=means[arm, paradigm], unit="mAP",
                                notes=f"mean of {len(vals)} seeds {seeds} "
                                      f"(std {np.std(vals):.4f}); {protocol}"))
        by_seed = {r["seed"]: r["train_wall_s"] for r in rows
                   if r["arm"] == arm and r["paradigm"] == PARADIGMS[0]}
        walls[arm] = [by_seed[s] for s in seeds]
        reused = any(r["reused"] for r in rows if r["arm"] == arm)
        summary.append(dict(part=part, quantity=f"{arm}_train_wall_s_mean",
                            value=float(np.mean(walls[arm])), unit="s",
                            notes=f"Experiment.student wall time per run (training + validation "
                                  f"+ test), mean of {len(walls[arm])} runs ({workers} worker "
                                  "process(es) at a time); bank build not included"
                                  + ("; SOME RUNS REUSED from --cache-dir (their original wall "
                                     "time)" if reused else "")))
    e2e = map_end_to_end(cached_walls=walls["cached"], uncached_walls=walls["uncached"],
                         bank_build_s=bank_build_s, bank_seed_of=bank_seed_of)
    n_seeds = len(bank_build_s)
    summary += [
        dict(part=part, quantity="shared_inputs_s", value=shared_s, unit="s",
             notes="built from cold before the runs and read by both arms: the teacher's codes "
                   "of the training set and the database, the student's clean features of the "
                   "validation, query and database sets; in neither arm's total"),
        dict(part=part, quantity="cached_bank_build_s", value=float(sum(bank_build_s.values())),
             unit="s", notes=f"built from cold (the study's feature cache emptied first): "
                             f"{views} views x the training images through the student and the "
                             f"teacher backbone, {n_seeds} bank seed(s) for seeds {seeds}"),
        dict(part=part, quantity="cached_run_end_to_end_s", value=e2e["cached_run_s"], unit="s",
             notes="one run: mean cached run wall time + the build of one seed's view banks"),
        dict(part=part, quantity="uncached_run_end_to_end_s", value=e2e["uncached_run_s"],
             unit="s", notes="one run: mean uncached run wall time"),
        dict(part=part, quantity="run_end_to_end_ratio", value=e2e["run_ratio"], unit="x",
             notes="uncached_run_end_to_end_s / cached_run_end_to_end_s"),
        dict(part=part, quantity="cached_grid_end_to_end_s", value=e2e["cached_grid_s"],
             unit="s", notes=f"the {len(seeds)} seeds: sum of the cached run wall times + the "
                             "view banks built once (shared by the seeds of a bank seed)"),
        dict(part=part, quantity="uncached_grid_end_to_end_s", value=e2e["uncached_grid_s"],
             unit="s", notes=f"the {len(seeds)} seeds: sum of the uncached run wall times"),
        dict(part=part, quantity="grid_end_to_end_ratio", value=e2e["grid_ratio"], unit="x",
             notes="uncached_grid_end_to_end_s / cached_grid_end_to_end_s"),
    ]
    for paradigm in PARADIGMS:
        diff = means["cached", paradigm] - means["uncached", paradigm]
        summary.append(dict(part=part, quantity=f"cached_minus_uncached_{paradigm}", value=diff,
                            unit="mAP", target=f"|diff| <= {MAP_TOLERANCE}",
                            met=abs(diff) <= MAP_TOLERANCE,
                            notes=f"difference of the seed means; {extra_note}"))
    return summary


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
        table = [{**r, "hours": r["value"] / 3600 if r.get("unit") == "s"
                  and isinstance(r.get("value"), float) else ""} for r in summary]
        lines += [markdown_table(table, ["part", "quantity", "value", "unit", "hours", "target",
                                         "met"], {"value": ".4g", "hours": ".4g"}), ""]
        fresh = [r for r in summary if r["part"] in _rerun_parts(args) and r.get("notes")]
        if fresh:
            lines += ["How each regenerated row was obtained (the `notes` column of `cache.csv`):",
                      ""]
            lines += [f"* `{r['part']}` / `{r['quantity']}`: {r['notes']}" for r in fresh]
            lines.append("")
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
                   help="speed: batch 8, epochs of 64 images, 1 timed uncached step, 2 probe "
                        "images; map: 1 seed, 10 epochs")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads (1: on a loaded CPU, 2 OpenMP threads wait on each other)")
    p.add_argument("--seed", type=int, default=0)
    g = p.add_argument_group("speed")
    g.add_argument("--student", default="efficientnet_b0",
                   help="student backbone (the paper profile's student config, this backbone)")
    g.add_argument("--teacher", default="vit_b_16",
                   help="teacher backbone (the paper profile's teacher config, this backbone)")
    g.add_argument("--code-length", type=int, default=64)
    g.add_argument("--image-size", type=int, default=224)
    g.add_argument("--source-size", type=int, default=CIFAR_SIZE,
                   help="side of the generated source images (CIFAR-10 stores 32 px)")
    g.add_argument("--n-images", type=int, default=None,
                   help="images per epoch (default: the paper protocol's training set)")
    g.add_argument("--batch-size", type=int, default=64, help="batch of BOTH arms")
    g.add_argument("--n-views", type=int, default=8, help="views in the bank")
    g.add_argument("--distiller", default="brcd")
    g.add_argument("--uncached-steps", type=int, default=2,
                   help="timed uncached steps after 1 warm-up (>= 2; --quick: 1)")
    g.add_argument("--uncached-full-epoch", action="store_true",
                   help="time a real uncached epoch of --n-images at --batch-size")
    g.add_argument("--cached-epochs", type=int, default=5, help="timed epochs after 1 warm-up")
    g.add_argument("--bank-probe-images", type=int, default=8,
                   help="images each backbone's bank view is timed on")
    g.add_argument("--run-epochs", type=int, default=None,
                   help="epochs of one run end to end (default: the paper profile's "
                        "student_train.epochs)")
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


def check_speed_args(args) -> None:
    """Clear errors for bad settings of part ``speed`` (and the paper protocol's epoch size as
    the default ``--n-images``)."""
    if "speed" not in args.parts:
        return
    if args.n_images is None:
        args.n_images = paper_grid.protocol_sizes("paper")["train"]
    for name in ("batch_size", "n_images", "code_length", "image_size", "source_size",
                 "cached_epochs", "bank_probe_images"):
        if getattr(args, name) < 1:
            raise SystemExit(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.run_epochs is not None and args.run_epochs < 1:
        raise SystemExit(f"--run-epochs must be >= 1, got {args.run_epochs}")
    if args.n_views < 2:
        raise SystemExit(f"--n-views must be >= 2 (a bank draws two different views per image), "
                         f"got {args.n_views}")
    if args.n_images < args.batch_size:
        raise SystemExit(f"--n-images ({args.n_images}) must be at least --batch-size "
                         f"({args.batch_size}): an epoch drops its last partial batch")
    if not args.uncached_full_epoch and args.uncached_steps < (1 if args.quick else 2):
        raise SystemExit(f"--uncached-steps must be >= 2 (>= 1 with --quick), got "
                         f"{args.uncached_steps}")


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
        args.batch_size, args.uncached_steps, args.cached_epochs = 8, 1, 3
        args.n_images = args.n_images or 64
        args.bank_probe_images = 2
        args.seeds = args.seeds[:1]
        args.epochs = args.epochs or 10
    check_speed_args(args)
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
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
