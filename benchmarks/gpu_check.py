"""A short check of the ``paper`` profile's GPU path (at most 8 minutes on one GPU), and the
grid's time from what it measures.

What it measures, each row labelled MEASURED (timed here), COUNTED (from the profile, no data) or
EXTRAPOLATED (measured rates x counts):

1. **backbones**: images/s of each grid backbone's ``net.features`` in the paper profile's GPU
   settings (bf16 autocast, channels-last), random weights, at batch 64 and 512 (inference);
2. **bank build**: one epoch of online banks for the main pair (ViT-B/16 teacher, EfficientNet-B0
   student) with SSKD's rotated copies, through :meth:`FeatureStore.online_bank` (augmentation +
   every forward pass; views per second);
3. **augmentation**: views/s of the paper transform drawn on the device
   (:class:`~brcd_lib.training.views.DeviceViews`, batched) and on the CPU (the per-image
   transform in ``--cpu-workers`` loader processes);
4. **heads**: BRCD and CRCD head steps/s at batch 64 on synthetic banks through ``engine.fit``:
   one run alone, and in aggregate: ``--processes`` processes each training ``--runs`` runs in
   step (:class:`~brcd_lib.training.together.Lockstep`), the way
   :func:`brcd_lib.experiments.together.train_together` trains a grid's students;
5. **grid**: the forward passes, augmented views and head steps of the ``paper`` profile's grid
   (``paper_grid.workload``: shared online banks, runs trained together; and the per-run
   pipeline it replaces) x the rates above -> hours.

Without CUDA it runs a **CPU DRY RUN**: the same code with tiny sizes, so that every path is
exercised; its numbers are CPU numbers of a shrunken run and say so on every line (NOT MEASURED
ON A GPU). The grid rows of a dry run use the H200 figures of issue #29 (:data:`ELSEWHERE`,
labelled MEASURED ELSEWHERE) instead of its own.

    python -m benchmarks.gpu_check [--device cuda] [--out-dir results/benchmarks]

writes ``gpu_check.json`` and ``gpu_check.md``; ``bench_gpu_estimate`` reads the JSON.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Sequence

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks import paper_grid  # noqa: E402
from benchmarks.run import DEFAULT_OUT, machine_notes, markdown_table  # noqa: E402

FIELDS = ["section", "what", "value", "unit", "label", "notes"]
CIFAR_SIZE = 32

# The H200 figures of issue #29 (NVIDIA H200, 16 CPU cores, torch 2.11, bf16 autocast,
# channels-last; the kit's Experiment on generated CIFAR-10 files, random weights). Not measured
# by this script: quoted, labelled MEASURED ELSEWHERE, until gpu_check has run on a GPU.
ELSEWHERE_SOURCE = ("issue #29: NVIDIA H200, 16 CPU cores, torch 2.11, bf16 autocast, "
                    "channels-last, random weights")
ELSEWHERE = {
    "images_per_s": {  # backbone: {batch: img/s}
        "vit_b_16": {64: 6138.0, 512: 6663.0}, "efficientnet_b0": {64: 11456.0, 512: 22342.0},
        "mobilenet_v2": {64: 17796.0}, "resnet18": {64: 28138.0}, "vit_b_32": {64: 9468.0},
        "vit_l_16": {64: 2290.0}},
    "gpu_augment_images_per_s": 51010.0,  # BatchAugment at 224 px, batch 512 (not the paper views)
    "cpu_augment_images_per_s": 1809.0,   # the paper transform in 16 processes
    "head_steps_per_s": {"brcd": 142.0, "crcd": 114.0},  # bank path, batch 64, one run
}


def _sync(device: str) -> None:
    import torch

    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def _device_name(device: str) -> str:
    import platform

    import torch

    if str(device).startswith("cuda"):
        return f"{device} ({torch.cuda.get_device_name(torch.device(device))})"
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


# ------------------------------------------------------------------------------------------------
# 1. backbones
# ------------------------------------------------------------------------------------------------
def backbone_rates(paper, backbones: Sequence[str], *, device: str, batches: Sequence[int],
                   repeats: int, warmup: int) -> dict[str, dict[int, float]]:
    """{backbone: {batch: images/s}} of ``net.features`` on random images (inference mode)."""
    import torch

    from benchmarks.bench_gpu_estimate import grid_model
    from benchmarks.nets import network_from_config

    teachers = [t if isinstance(t, str) else t.name for t in paper.teacher_backbones]
    size = paper.data.image_size
    out: dict[str, dict[int, float]] = {}
    for name in backbones:
        model, role = grid_model(paper, name, teachers)
        net = network_from_config(model, 16, role=role, device=device)
        out[name] = {}
        for batch in batches:
            x = torch.randn(batch, 3, size, size, device=device)
            times = []
            with torch.inference_mode():
                for i in range(warmup + repeats):
                    _sync(device)
                    t0 = time.perf_counter()
                    net.features(x)
                    _sync(device)
                    if i >= warmup:
                        times.append(time.perf_counter() - t0)
            out[name][batch] = batch / statistics.median(times)
            print(f"  {name} batch {batch}: {out[name][batch]:.1f} img/s", flush=True)
        del net
        if str(device).startswith("cuda"):
            torch.cuda.empty_cache()
    return out


# ------------------------------------------------------------------------------------------------
# 2. bank build, 3. augmentation
# ------------------------------------------------------------------------------------------------
def _views(paper, n: int, *, device: str, kind: str, workers: int):
    from benchmarks.train_steps import random_images
    from brcd_lib.data.transforms import get_transforms
    from brcd_lib.training.views import make_views

    ds = random_images(n, CIFAR_SIZE, 0)
    transform = get_transforms(paper.data.transform, size=paper.data.image_size, train=True)
    return make_views(ds, transform, augment=kind, device=device, num_workers=workers,
                      pin_memory=str(device).startswith("cuda"))


def bank_build_rate(paper, *, device: str, n: int, batch: int, workers: int) -> dict:
    """One epoch of online banks for the main pair with SSKD's 4 rotated copies (a fresh store,
    nothing cached): seconds and views per second (each view: augmentation, then 2 + 3 rotated
    forward passes through each of the two backbones)."""
    import tempfile

    from benchmarks.nets import network_from_config
    from brcd_lib.training.features import FeatureStore

    teacher = network_from_config(paper.teacher, 16, role="teacher", device=device)
    student = network_from_config(paper.student, 16, role="student", device=device)
    kind = "device" if str(device).startswith("cuda") else "cpu"
    views = _views(paper, n, device=device, kind=kind, workers=workers)
    out = {}
    for epoch in (0, 1):  # epoch 0 warms up
        store = FeatureStore(cache_dir=tempfile.gettempdir(), enabled=False)
        _sync(device)
        t0 = time.perf_counter()
        store.online_bank([(teacher, 4), (student, 4)], views, seed=0, epoch=epoch,
                          split_hash="gpu-check", transform_desc="paper", batch=batch,
                          device=device, progress=False)
        _sync(device)
        out = {"seconds": time.perf_counter() - t0, "images": n, "kind": kind,
               "passes": dict(store.built_passes)}
    out["views_per_s"] = 2 * n / out["seconds"]
    return out


def augment_rate(paper, *, device: str, kind: str, n: int, batch: int, workers: int) -> float:
    """Views per second the online pipeline draws (2 views per image), second of two epochs."""
    from brcd_lib.training.views import epoch_batches

    views = _views(paper, n, device=device, kind=kind, workers=workers)
    rate = 0.0
    for epoch in (0, 1):
        batches = epoch_batches(n, seed=0, epoch=epoch, batch_size=batch)
        _sync(device)
        t0 = time.perf_counter()
        count = 0
        for (x1, _x2), _ in views.draw(seed=0, epoch=epoch, batches=batches, device=device):
            count += 2 * x1.shape[0]
        _sync(device)
        rate = count / (time.perf_counter() - t0)
    return rate


# ------------------------------------------------------------------------------------------------
# 4. heads
# ------------------------------------------------------------------------------------------------
class _Heads:
    """A student or teacher of the paper profile reduced to its head (what ``engine.fit`` trains
    on banks): ``head_forward`` and the head's parameters."""

    def __new__(cls, model, bits: int, *, in_dim: int, device: str):
        from torch import nn

        from brcd_lib.experiments.plan import head_of
        from brcd_lib.models.heads import create_head

        class Head(nn.Module):
            def __init__(self):
                super().__init__()
                self.head = create_head(head_of(model), in_dim=in_dim, code_length=bits,
                                        hidden=model.head_hidden)
                self.code_length = bits

            def head_forward(self, feats):
                return self.head(feats)

        return Head().to(device)


def _bank(n: int, *, device: str, seed: int = 0) -> dict:
    import torch

    g = torch.Generator().manual_seed(seed)
    return {"student": torch.randn(2, n, 1280, generator=g).to(device, torch.bfloat16),
            "teacher": torch.randn(2, n, 768, generator=g).to(device, torch.bfloat16)}


def _head_run(method: str, *, seed: int, device: str, n: int, epochs: int, bank: dict):
    """A closure training one head run with ``engine.fit`` on ``bank`` (returns its steps)."""
    import torch

    from benchmarks.train_steps import prepared_distiller
    from brcd_lib.config import TrainConfig
    from brcd_lib.experiments import plan as kit_plan
    from brcd_lib.experiments.profiles import get_profile
    from brcd_lib.models import get_objective
    from brcd_lib.training import engine
    from brcd_lib.training.sources import OnlineBankPairSource

    paper = get_profile("paper")
    bits = 64
    torch.manual_seed(seed)
    student = _Heads(paper.student, bits, in_dim=1280, device=device)
    teacher = _Heads(paper.teacher, bits, in_dim=768, device=device).eval()
    distiller = prepared_distiller(method, n_train=n, code_length=bits, seed=seed,
                                   kwargs=kit_plan.distill_kwargs(paper, method), device=device)
    objective = get_objective(paper.student.objective, **paper.student.objective_kwargs)
    cfg = TrainConfig(epochs=epochs, batch_size=64, lr=paper.student_train.lr, eval_every=epochs,
                      patience=5)
    source = OnlineBankPairSource(n=n, fetch=lambda epoch: bank)

    def train():
        engine.fit(name=f"{method} {seed}", net=student, objective=objective, source=source,
                   train_cfg=cfg, seed=seed, validate=lambda: {"symmetric": 0.0},
                   teacher=teacher, distiller=distiller, progress=False)
        _sync(device)
        return epochs * max(n // 64, 1)

    return train


def head_rate_alone(method: str, *, device: str, n: int, epochs: int) -> float:
    """Steps per second of one run (after a one-epoch warm-up run), on one intra-op thread as
    in the worker processes."""
    import torch

    torch.set_num_threads(1)
    bank = _bank(n, device=device)
    _head_run(method, seed=1, device=device, n=n, epochs=1, bank=bank)()
    train = _head_run(method, seed=0, device=device, n=n, epochs=epochs, bank=bank)
    t0 = time.perf_counter()
    steps = train()
    return steps / (time.perf_counter() - t0)


def _group_worker(args: tuple) -> tuple[int, float, float]:
    """A worker process: ``runs`` head runs in step; (steps, start, end) after a shared start."""
    import torch

    from brcd_lib.training.together import Lockstep

    method, runs, device, n, epochs, barrier, index = args
    torch.set_num_threads(1)
    bank = _bank(n, device=device)
    _head_run(method, seed=10_000 + index, device=device, n=n, epochs=1, bank=bank)()  # warm-up
    tasks = [_head_run(method, seed=100 * index + r, device=device, n=n, epochs=epochs, bank=bank)
             for r in range(runs)]
    barrier.wait()
    t0 = time.time()
    results = Lockstep().run(tasks)
    errors = [e for _, e in results if e is not None]
    if errors:
        raise errors[0]
    return sum(r for r, _ in results), t0, time.time()


def head_rate_aggregate(method: str, *, device: str, n: int, epochs: int, processes: int,
                        runs: int) -> dict:
    """Steps per second of ``processes`` x ``runs`` runs: every process trains its runs in step;
    the rate is all steps over the wall time from the common start to the last finish."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    ctx = multiprocessing.get_context("spawn")
    with ctx.Manager() as manager:
        barrier = manager.Barrier(processes)
        with ProcessPoolExecutor(max_workers=processes, mp_context=ctx) as pool:
            parts = list(pool.map(_group_worker, [(method, runs, device, n, epochs, barrier, i)
                                                  for i in range(processes)]))
    steps = sum(p[0] for p in parts)
    wall = max(p[2] for p in parts) - min(p[1] for p in parts)
    return {"steps": steps, "seconds": wall, "steps_per_s": steps / wall,
            "processes": processes, "runs_per_process": runs}


# ------------------------------------------------------------------------------------------------
# 5. the grid
# ------------------------------------------------------------------------------------------------
def grid_rows(rates: dict, *, rate_label: str, rate_note: str) -> list[dict]:
    """COUNTED work of the paper grid (shared banks, trained together; and the per-run pipeline)
    x ``rates`` -> EXTRAPOLATED hours. ``rates``: images_per_s {backbone: img/s},
    augment_images_per_s, head_steps_per_s {"alone": s/s, "aggregate": s/s or None}."""
    from brcd_lib.experiments.profiles import get_profile

    paper = get_profile("paper")
    w = paper_grid.workload(paper)
    rows = []
    seeds = len(paper.seeds)
    for b, k in w["forward_passes"].items():
        rows.append(dict(section="grid", what=f"forward passes {b} (shared banks, {seeds} seeds)",
                         value=k, unit="images", label="COUNTED",
                         notes="paper_grid.workload: teachers' phase + students' phase, each "
                               "view once per backbone and epoch; upper bound (no early stop)"))
        rows.append(dict(section="grid", what=f"forward passes {b} (per-run pipeline)",
                         value=w["forward_passes_per_run"][b], unit="images", label="COUNTED",
                         notes="every run pushes its own views through its two backbones"))
    steps = w["head_steps"]["teacher"] + w["head_steps"]["student"]
    rows += [dict(section="grid", what="augmented views (shared)", value=w["augmented_views"],
                  unit="images", label="COUNTED", notes=""),
             dict(section="grid", what="head steps", value=steps, unit="steps", label="COUNTED",
                  notes=f"teachers {w['head_steps']['teacher']:,}, students "
                        f"{w['head_steps']['student']:,} (every epoch of every run)")]
    ips = rates["images_per_s"]
    forward_h = sum(k / ips[b] for b, k in w["forward_passes"].items()) / 3600
    per_run_h = sum(k / ips[b] for b, k in w["forward_passes_per_run"].items()) / 3600
    augment_h = w["augmented_views"] / rates["augment_images_per_s"] / 3600
    alone = rates["head_steps_per_s"]["alone"]
    aggregate = rates["head_steps_per_s"].get("aggregate")
    heads_alone_h = steps / alone / 3600
    rows += [
        dict(section="grid", what="forward hours (shared banks)", value=forward_h, unit="h",
             label="EXTRAPOLATED", notes=f"counted passes / {rate_label} images/s at batch "
                                         f"{BANK_BATCH}, the banks' forward batch ({rate_note})"),
        dict(section="grid", what="forward hours (per-run pipeline)", value=per_run_h, unit="h",
             label="EXTRAPOLATED", notes="the same rates; before issue #29"),
        dict(section="grid", what="augmentation hours (on the device)", value=augment_h,
             unit="h", label="EXTRAPOLATED",
             notes=f"augmented views / {rates['augment_images_per_s']:.4g} views/s"),
        dict(section="grid", what="head hours at the one-run rate", value=heads_alone_h, unit="h",
             label="EXTRAPOLATED", notes=f"head steps / {alone:.4g} steps/s (BRCD alone)"),
        dict(section="grid", what="grid hours, one run at a time", unit="h", label="EXTRAPOLATED",
             value=forward_h + augment_h + heads_alone_h,
             notes="forward + augmentation + heads at the one-run rate (no overlap)"),
    ]
    if aggregate:
        heads_h = steps / aggregate / 3600
        rows += [dict(section="grid", what="head hours in aggregate", value=heads_h, unit="h",
                      label="EXTRAPOLATED",
                      notes=f"head steps / {aggregate:.4g} steps/s (BRCD, runs in step in "
                            "worker processes)"),
                 dict(section="grid", what="grid hours, runs trained together", unit="h",
                      label="EXTRAPOLATED", value=forward_h + augment_h + heads_h,
                      notes="forward + augmentation + heads in aggregate (no overlap)")]
    budget = 8 * 3600 - (forward_h + augment_h) * 3600
    rows.append(dict(section="grid", what="aggregate head rate the 8-hour target needs",
                     value=steps / budget if budget > 0 else float("inf"), unit="steps/s",
                     label="EXTRAPOLATED",
                     notes="head steps / (8 h - forward hours - augmentation hours)"))
    return rows


BANK_BATCH = 64
"""The forward batch of the online banks the estimate assumes: the runs' batch size, the kit's
default (``Experiment(bank_batch=None)``), at which the banks equal the per-run pipeline's
features."""


def elsewhere_rates() -> dict:
    return {"images_per_s": {b: v[BANK_BATCH] for b, v in ELSEWHERE["images_per_s"].items()},
            "augment_images_per_s": ELSEWHERE["gpu_augment_images_per_s"],
            "head_steps_per_s": {"alone": ELSEWHERE["head_steps_per_s"]["brcd"],
                                 "aggregate": None}}


# ------------------------------------------------------------------------------------------------
# the driver
# ------------------------------------------------------------------------------------------------
def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default=None, help="cuda (default when available) or cpu")
    p.add_argument("--out-dir", type=Path, default=DEFAULT_OUT)
    p.add_argument("--processes", type=int, default=None,
                   help="worker processes of the aggregate head rate (default: 8 on CUDA, 2 "
                        "on the CPU)")
    p.add_argument("--runs", type=int, default=None,
                   help="head runs per process (default: 4 on CUDA, 2 on the CPU)")
    p.add_argument("--cpu-workers", type=int, default=None,
                   help="loader processes of the CPU augmentation rate (default: the CPUs)")
    p.add_argument("--backbones", nargs="*", default=None,
                   help="default: every backbone of the paper grid")
    return p


def main(argv: Sequence[str] | None = None) -> dict:
    import os

    import torch

    from brcd_lib.experiments.preflight import check_device
    from brcd_lib.experiments.profiles import get_profile
    from brcd_lib.io import atomic_write_text

    args = get_args_parser().parse_args(argv)
    device = check_device(args.device) or ("cuda" if torch.cuda.is_available() else "cpu")
    gpu = device.startswith("cuda")
    dry = not gpu
    t_start = time.perf_counter()
    paper = get_profile("paper")
    from brcd_lib.experiments.preflight import run_plan

    backbones = args.backbones or paper_grid.grid_backbones(paper, run_plan(paper))
    cpus = os.cpu_count() or 1
    size = dict(batches=(64, 512), repeats=10, warmup=3, bank_n=5000, aug_n=5120, head_n=5000,
                epochs=4, processes=args.processes or 8, runs=args.runs or 4,
                cpu_workers=args.cpu_workers or cpus) if gpu else \
        dict(batches=(2,), repeats=1, warmup=1, bank_n=4, aug_n=8, head_n=256, epochs=2,
             processes=args.processes or 2, runs=args.runs or 2,
             cpu_workers=args.cpu_workers or min(cpus, 2))
    label = "MEASURED" if gpu else "DRY RUN (CPU, NOT MEASURED ON A GPU)"
    dev = _device_name(device)
    rows: list[dict] = []

    def add(section, what, value, unit, notes=""):
        rows.append(dict(section=section, what=what, value=value, unit=unit, label=label,
                         notes=notes))

    print(f"gpu_check on {dev}{' (CPU dry run)' if dry else ''}", flush=True)
    print("1. backbones", flush=True)
    rates = backbone_rates(paper, backbones, device=device, batches=size["batches"],
                           repeats=size["repeats"], warmup=size["warmup"])
    for b, per in rates.items():
        for batch, ips in per.items():
            add("backbones", f"{b} inference, batch {batch}", ips, "img/s",
                f"net.features, {paper.data.image_size} px, random weights, "
                f"{'bf16 + channels-last' if gpu else 'float32'}, median of {size['repeats']}")
    print("2. bank build", flush=True)
    bank = bank_build_rate(paper, device=device, n=size["bank_n"], batch=paper.student_train.batch_size,
                           workers=size["cpu_workers"])
    add("bank build", "online banks of ViT-B/16 + EfficientNet-B0 with SSKD's 3 rotated copies",
        bank["views_per_s"], "views/s",
        f"FeatureStore.online_bank, one epoch of {bank['images']} images x 2 views, "
        f"{bank['kind']} augmentation, forward batch {paper.student_train.batch_size}, "
        f"{bank['seconds']:.3f} s; passes {bank['passes']}")
    print("3. augmentation", flush=True)
    aug = {}
    for kind in ("device", "cpu"):
        workers = size["cpu_workers"] if kind == "cpu" else min(size["cpu_workers"], 8)
        aug[kind] = augment_rate(paper, device=device, kind=kind, n=size["aug_n"],
                                 batch=512 if gpu else 4, workers=workers)
        add("augmentation", f"paper views batched on {device}" if kind == "device" else
            "paper views per image on the CPU",
            aug[kind], "views/s",
            f"{size['aug_n']} images x 2 views; "
            + (f"parameters in {workers} loader processes, batched on the device"
               if kind == "device" else f"{workers} loader processes"))
    print("4. heads", flush=True)
    heads = {}
    for method in ("brcd", "crcd"):
        alone = head_rate_alone(method, device=device, n=size["head_n"], epochs=size["epochs"])
        agg = head_rate_aggregate(method, device=device, n=size["head_n"], epochs=size["epochs"],
                                  processes=size["processes"], runs=size["runs"])
        heads[method] = {"alone": alone, "aggregate": agg["steps_per_s"]}
        add("heads", f"{method.upper()} head steps, one run", alone, "steps/s",
            f"engine.fit on a synthetic bf16 bank of {size['head_n']} images (1280 / 768 dims), "
            f"batch 64, 64 bits, {size['epochs']} epochs")
        add("heads", f"{method.upper()} head steps, aggregate", agg["steps_per_s"], "steps/s",
            f"{agg['processes']} processes x {agg['runs_per_process']} runs in step, "
            f"{agg['steps']} steps in {agg['seconds']:.2f} s "
            f"({agg['steps_per_s'] / alone:.2f}x one run)")
    print("5. grid", flush=True)
    if gpu:
        measured = {"images_per_s": {b: per[BANK_BATCH] for b, per in rates.items()},
                    "augment_images_per_s": aug["device"],
                    "head_steps_per_s": {"alone": heads["brcd"]["alone"],
                                         "aggregate": heads["brcd"]["aggregate"]}}
        grid = grid_rows(measured, rate_label="MEASURED", rate_note=f"this run on {dev}")
    else:
        grid = grid_rows(elsewhere_rates(), rate_label="MEASURED ELSEWHERE",
                         rate_note=ELSEWHERE_SOURCE)
    rows += grid
    elapsed = time.perf_counter() - t_start
    result = {"device": dev, "gpu": gpu, "dry_run": dry, "elapsed_s": elapsed,
              "machine": machine_notes(), "rows": rows,
              "rates": {"images_per_s": rates, "bank_build": bank, "augment_views_per_s": aug,
                        "head_steps_per_s": heads}}
    args.out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out_dir / "gpu_check.json", json.dumps(result, indent=1) + "\n")
    atomic_write_text(args.out_dir / "gpu_check.md", markdown(result))
    print(markdown(result))
    return result


def markdown(result: dict) -> str:
    dry = result["dry_run"]
    lines = ["# GPU check of the paper profile", ""]
    if dry:
        lines += ["**CPU DRY RUN: NOT MEASURED ON A GPU.** No CUDA device was available, so "
                  "this is `benchmarks/gpu_check.py` run with tiny sizes on the CPU to exercise "
                  "every code path; its rates are CPU rates of a shrunken run, not GPU figures. "
                  "The grid rows use the H200 figures of issue #29, labelled MEASURED ELSEWHERE "
                  f"({ELSEWHERE_SOURCE}).", ""]
    lines += [f"Generated by `python -m benchmarks.gpu_check` in {result['elapsed_s']:.0f} s on "
              f"{result['device']}; {result['machine']}.", "",
              "Labels: MEASURED (timed in this run on a GPU), DRY RUN (timed in this run on the "
              "CPU, tiny sizes), COUNTED (from the profile, no data), EXTRAPOLATED (rates x "
              "counts).", ""]
    lines.append(markdown_table(result["rows"], ["section", "what", "value", "unit", "label"],
                                {"value": ".4g"}))
    lines += ["", "Notes:", ""]
    lines += [f"* {r['section']} / {r['what']}: {r['notes']}" for r in result["rows"]
              if r.get("notes")]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
