"""How long the paper profile's grid takes: backbone forward passes x seconds per image, plus
augmentation and head steps.

Forward passes: every backbone of the ``paper`` profile's notebook sequence, counted without the
data by ``preflight._workload`` on ``preflight.run_plan("paper")`` and the CIFAR-10 protocol's
split sizes (``benchmarks.paper_grid.workload``; upper bound: every epoch runs, no early
stopping), two ways: as the kit trains the grid (``Profile.train_together``: each epoch's views
through each frozen backbone once, shared by every run with the same augmentation seed; issue
#29) and as each run alone would push its views through its two backbones (the per-run
pipeline, before issue #29).

Seconds per image, from two sources:

* ``cpu``: measured on this CPU (torch on ``--threads`` threads, float32): the paper group's
  throughput at the largest batch <= ``--batch-size`` in ``latency.csv`` (``bench_latency``) for
  the backbones it has, the others (e.g. the other teachers of the backbone pairs) measured here
  (1 warm-up call and ``--cpu-repeats`` timed calls of ``net.features`` at ``--batch-size``;
  ``--cpu-source measure`` measures every backbone) -> the CPU time of the grid.
* ``gpu``: on a CUDA device (``--device cuda``) measured here with the paper profile's GPU path
  (bf16 autocast + channels-last, ``--batch-size`` 64, ``--gpu-repeats`` timed calls after 3
  warm-ups); otherwise the rates of ``gpu_check.json`` when ``benchmarks/gpu_check.py`` ran on a
  GPU (``--gpu-check``), else the H200 figures of issue #29, labelled MEASURED ELSEWHERE
  (``gpu_check.ELSEWHERE``). The FLOP-based ESTIMATE rows of earlier versions are gone: they put
  EfficientNet-B0 34x above the measured rate.

The CPU side of the per-run pipeline is timed too (``--augment-images``): seconds per augmented
image of the paper training transform (one process, measured here) x the augmented views
(shared and per run).

``--train-steps N`` (default 3 on CUDA, 0 elsewhere) also times N per-run online BRCD student
training steps of ViT-B/16 -> EfficientNet-B0 (random weights, generated CIFAR-10-shaped images
through the paper training transform, the paper profile's batch size, loader workers, pinned
memory and GPU settings) after one warm-up step, and extrapolates them to an epoch, a run and the
grid's student runs (labelled EXTRAPOLATED).

    python -m benchmarks.bench_gpu_estimate [--device cuda] [--gpu-check PATH] [--out-dir DIR]

writes ``gpu_estimate.csv`` and ``gpu_estimate.md``.
"""
from __future__ import annotations

import argparse
import csv
import dataclasses
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
from benchmarks.run import DEFAULT_OUT, machine_notes, markdown_table, write_outputs  # noqa: E402

FIELDS = ["source", "device", "backbone", "quantity", "value", "unit", "label", "notes"]
CIFAR_SIZE = 32


def grid_model(paper, name: str, teachers: Sequence[str] = ()):
    """The paper profile's ModelConfig for backbone ``name`` and its role: the teacher's settings
    for the profile's teacher and the backbones in ``teachers``, the student's otherwise (only
    the backbone's forward pass is timed or counted)."""
    from benchmarks.nets import with_backbone

    if name == paper.teacher.backbone.name or name in teachers:
        return with_backbone(paper.teacher, name), "teacher"
    return with_backbone(paper.student, name), "student"


def hours_rows(source: str, device: str, images_per_s: dict[str, float],
               passes: dict[str, int], *, label: str, ips_notes: dict[str, str],
               time_label: str = "EXTRAPOLATED") -> list[dict]:
    """Per backbone: images/s and the hours of its forward passes; then the total."""
    missing = [b for b in passes if b not in images_per_s]
    if missing:
        raise ValueError(f"{source}: no images/s for backbone(s) {missing}")
    rows, total = [], 0.0
    for b, n in passes.items():
        ips = images_per_s[b]
        if not ips > 0:
            raise ValueError(f"{source}: images/s of {b} must be > 0, got {ips!r}")
        hours = n / ips / 3600
        total += hours
        rows.append(dict(source=source, device=device, backbone=b, quantity="images_per_s",
                         value=float(ips), unit="img/s", label=label, notes=ips_notes[b]))
        rows.append(dict(source=source, device=device, backbone=b, quantity="forward_hours",
                         value=hours, unit="h", label=time_label,
                         notes=f"{n:,} forward passes / {ips:.4g} img/s"))
    rows.append(dict(source=source, device=device, backbone="all", quantity="grid_forward_hours",
                     value=total, unit="h", label=time_label,
                     notes="sum over the backbones: forward passes only (no augmentation, heads, "
                           "losses, validation or retrieval); upper bound of the epochs run"))
    return rows


def read_latency(path: Path, backbones: Sequence[str], batch_size: int) -> dict:
    """{backbone: (images/s, batch, notes)} of the backbones of ``backbones`` that the paper
    group of ``latency.csv`` has at a batch <= ``batch_size`` (the largest such batch); empty
    when the file is missing."""
    if not path.exists():
        return {}
    with open(path, encoding="utf-8", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r.get("group") == "paper"]
    out = {}
    for b in backbones:
        mine = [r for r in rows if r["backbone"] == b and int(r["batch_size"]) <= batch_size]
        if not mine:
            continue
        best = max(mine, key=lambda r: int(r["batch_size"]))
        out[b] = (float(best["throughput_img_s"]), int(best["batch_size"]),
                  f"MEASURED by bench_latency ({path.name}): net.encode at batch "
                  f"{best['batch_size']}, {best['image_size']} px, median of {best['rounds']} "
                  f"interleaved rounds on {best['device']}, load {best['load_before']}")
    return out


def measure_forward(paper, backbones: Sequence[str], *, device: str, batch_size: int,
                    warmup: int, repeats: int,
                    teachers: Sequence[str] = ()) -> dict[str, tuple[float, str]]:
    """{backbone: (images/s, notes)}: ``net.features`` of a random batch on ``device`` with the
    kit's settings there (bf16 + channels-last on CUDA, float32 elsewhere)."""
    import torch

    from benchmarks.nets import network_from_config

    size = paper.data.image_size
    cuda = str(device).startswith("cuda")
    out = {}
    for b in backbones:
        model, role = grid_model(paper, b, teachers)
        net = network_from_config(model, 16, role=role, device=device)
        x = torch.randn(batch_size, 3, size, size, device=device)
        times = []
        with torch.inference_mode():
            for i in range(warmup + repeats):
                t0 = time.perf_counter()
                net.features(x)
                if cuda:
                    torch.cuda.synchronize()
                if i >= warmup:
                    times.append(time.perf_counter() - t0)
        med = statistics.median(times)
        out[b] = (batch_size / med,
                  f"MEASURED here: net.features at batch {batch_size}, {size} px, "
                  f"{net.feature_tag or 'float32'}, median of {repeats} calls after {warmup} "
                  f"warm-up ({', '.join(f'{t:.3f}' for t in times)} s)")
        print(f"{b}: {batch_size / med:.1f} img/s on {device}", flush=True)
        del net
    return out


def gpu_rates(path: Path | None) -> tuple[dict[str, float], str, str, dict]:
    """(images/s per backbone at the banks' forward batch ``gpu_check.BANK_BATCH``, label, source
    note, other rates) for the GPU rows: a ``gpu_check.json`` measured on a GPU at ``path``, else
    the H200 figures of issue #29."""
    from benchmarks import gpu_check

    if path is not None and path.exists():
        with open(path, encoding="utf-8") as fh:
            check = json.load(fh)
        if check.get("gpu"):
            ips = {b: float(per[str(gpu_check.BANK_BATCH)])
                   for b, per in check["rates"]["images_per_s"].items()}
            heads = check["rates"]["head_steps_per_s"]["brcd"]
            return (ips, "MEASURED", f"benchmarks/gpu_check.py on {check['device']} "
                    f"({path.name})", {"augment": check["rates"]["augment_views_per_s"]["device"],
                                       "heads_alone": heads["alone"],
                                       "heads_aggregate": heads["aggregate"],
                                       "device": check["device"]})
    e = gpu_check.ELSEWHERE
    return ({b: v[gpu_check.BANK_BATCH] for b, v in e["images_per_s"].items()},
            "MEASURED ELSEWHERE", f"{gpu_check.ELSEWHERE_SOURCE}; batch {gpu_check.BANK_BATCH}",
            {"augment": e["gpu_augment_images_per_s"], "heads_alone": e["head_steps_per_s"]["brcd"],
             "heads_aggregate": None, "device": "H200 (issue #29)"})


def augmentation_rows(paper, work: dict, *, images: int) -> list[dict]:
    """The CPU side of the online pipeline: seconds per augmented image (the paper training
    transform on generated CIFAR-10-shaped images, one process, measured here) x the augmented
    views the grid draws, shared (each epoch's views drawn once per augmentation seed) and per
    run (2 per training image and epoch of every run); the rotated copies are rotations of view
    1, not new augmentations."""
    import torch

    from benchmarks.train_steps import random_images
    from brcd_lib.data.transforms import get_transforms

    transform = get_transforms(paper.data.transform, size=paper.data.image_size, train=True)
    ds = random_images(images + 8, CIFAR_SIZE, 0).with_transform(transform)
    torch.manual_seed(0)
    for i in range(8):  # warm-up
        ds[i]
    t0 = time.perf_counter()
    for i in range(8, len(ds)):
        ds[i]
    per_image = (time.perf_counter() - t0) / images
    cpu = _device_name("cpu")
    rows = [dict(source="augmentation", device=cpu, backbone="-",
                 quantity="s_per_augmented_image", value=per_image, unit="s", label="MEASURED",
                 notes=f"the paper profile's training transform ({paper.data.transform}, "
                       f"{CIFAR_SIZE} px uint8 -> {paper.data.image_size} px) on {images} "
                       "generated images after 8 warm-up, one process")]
    for how, key, note in (("shared", "augmented_views", "each epoch's two views drawn once per "
                            "augmentation seed and phase (teachers, students)"),
                           ("per_run", "augmented_views_per_run", "2 views per training image "
                            "and epoch of every run")):
        views = work[key]
        rows += [dict(source="augmentation", device="", backbone=how, quantity="augmented_views",
                      value=views, unit="images", label="COUNTED",
                      notes=f"{note} (upper bound, no early stopping)"),
                 dict(source="augmentation", device=cpu, backbone=how, quantity="cpu_hours",
                      value=views * per_image / 3600, unit="h", label="EXTRAPOLATED",
                      notes="augmented_views x s_per_augmented_image: CPU time of the per-image "
                            "transform (one core)")]
    return rows


def train_step_rows(args, paper, *, runs: int, n_train: int) -> list[dict]:
    """Uncached BRCD student steps of the paper profile's pair on ``args.device``, extrapolated."""
    import torch

    from benchmarks.nets import describe, network_from_config, with_backbone
    from benchmarks.train_steps import prepared_distiller, random_images, timed_epochs
    from brcd_lib.data.transforms import TwoViews, get_transforms
    from brcd_lib.experiments import plan as kit_plan
    from brcd_lib.models import get_objective
    from brcd_lib.training.sources import ImagePairSource

    device, train = args.device, paper.student_train
    B = args.train_batch_size or train.batch_size
    size = args.image_size or paper.data.image_size
    s_model = with_backbone(paper.student, args.student_backbone or paper.student.backbone.name)
    t_model = with_backbone(paper.teacher, args.teacher_backbone or paper.teacher.backbone.name)
    student = network_from_config(s_model, args.code_length, role="student", device=device)
    teacher = network_from_config(t_model, args.code_length, role="teacher", device=device)
    objective = get_objective(paper.student.objective, **paper.student.objective_kwargs)
    n_steps = args.train_steps + 1
    ds = random_images(B * n_steps, CIFAR_SIZE, 0)
    transform = get_transforms(paper.data.transform, size=size, train=True)
    workers = args.num_workers if args.num_workers is not None else train.num_workers
    pinned = train.pin_memory and str(device).startswith("cuda")
    source = ImagePairSource(dataset=ds.with_transform(TwoViews(transform)),
                             student_features=student.features, teacher_features=teacher.features,
                             device=device, num_workers=workers, pin_memory=pinned)
    distiller = prepared_distiller("brcd", n_train=max(len(ds), n_train),
                                   code_length=args.code_length, seed=0,
                                   kwargs=kit_plan.distill_kwargs(paper, "brcd"), device=device)
    torch.manual_seed(0)
    steps, _ = timed_epochs(source, net=student, objective=objective, teacher=teacher,
                            distiller=distiller, batch_size=B, epochs=1, seed=0, lr=train.lr,
                            device=device)
    step_s = statistics.median(steps[1:])
    epoch_s = step_s * (n_train // B)
    run_s = epoch_s * train.epochs
    dev = _device_name(device)
    what = (f"uncached BRCD {describe(s_model)} <- {describe(t_model)}, random weights, "
            f"{args.code_length} bits, generated {CIFAR_SIZE} px images through the paper "
            f"training transform to {size} px, batch {B}, {workers} loader workers, pinned memory "
            f"{pinned}, backbones {student.feature_tag or 'float32'}")
    return [
        dict(source="train", device=dev, backbone="brcd pair", quantity="step_s", value=step_s,
             unit="s", label="MEASURED",
             notes=f"median of {len(steps) - 1} steps after 1 warm-up step (step times "
                   f"{', '.join(f'{s:.3f}' for s in steps)} s); {what}"),
        dict(source="train", device=dev, backbone="brcd pair", quantity="epoch_s",
             value=epoch_s, unit="s", label="EXTRAPOLATED",
             notes=f"step_s x {n_train // B} steps ({n_train} training images, drop_last)"),
        dict(source="train", device=dev, backbone="brcd pair", quantity="run_hours",
             value=run_s / 3600, unit="h", label="EXTRAPOLATED",
             notes=f"epoch_s x {train.epochs} epochs (the paper profile's student_train.epochs; "
                   "no early stopping, no validation)"),
        dict(source="train", device=dev, backbone="brcd pair", quantity="student_grid_hours",
             value=runs * run_s / 3600, unit="h", label="EXTRAPOLATED",
             notes=f"run_hours x {runs} student runs of run_plan('paper'), every run costed as "
                   "this one (SSKD's rotated copies and the other students not costed "
                   "separately); teachers not included"),
    ]


def _device_name(device: str) -> str:
    import platform

    import torch

    if str(device).startswith("cuda"):
        return f"{device} ({torch.cuda.get_device_name(torch.device(device))})"
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def markdown(rows: list[dict], args, elapsed: float, header: list[str]) -> str:
    lines = ["# Paper grid time: forward passes x seconds per image", "",
             f"Generated by `benchmarks/bench_gpu_estimate.py` in {elapsed:.0f} s on "
             f"{machine_notes(args.threads)}. Labels: COUNTED (from the profile, no data), "
             "MEASURED (timed in a run of the kit's scripts), MEASURED ELSEWHERE (the H200 "
             "figures of issue #29, not measured by this kit's scripts), EXTRAPOLATED (rates x "
             "counts).", ""]
    lines += header + [""]
    lines.append(markdown_table(rows, ["source", "device", "backbone", "quantity", "value", "unit",
                                       "label"], {"value": ".4g"}))
    lines += ["", "Notes:", ""]
    lines += [f"* `{r['source']}` / `{r['backbone']}` / `{r['quantity']}`: {r['notes']}"
              for r in rows if r.get("notes")]
    return "\n".join(lines) + "\n"


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="The paper grid's time from forward passes and "
                                            "seconds per image (CPU measured; GPU measured or "
                                            "estimated).")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:<i>")
    p.add_argument("--batch-size", type=int, default=64,
                   help="batch of the throughput measurements (the latency.csv batch is the "
                        "largest <= this)")
    p.add_argument("--cpu-source", choices=["auto", "latency", "measure"], default="auto",
                   help="auto: latency.csv for the backbones it has, the others measured; "
                        "latency: every backbone from latency.csv; measure: every backbone here")
    p.add_argument("--latency-csv", type=Path, default=None,
                   help="default: <out-dir>/latency.csv")
    p.add_argument("--cpu-repeats", type=int, default=2, help="timed calls after 1 warm-up")
    p.add_argument("--gpu-repeats", type=int, default=10, help="timed calls after 3 warm-ups")
    p.add_argument("--gpu-check", type=Path, default=None,
                   help="gpu_check.json of benchmarks/gpu_check.py run on a GPU (default: "
                        "<out-dir>/gpu_check.json; without one measured on a GPU the GPU rows "
                        "use the H200 figures of issue #29, MEASURED ELSEWHERE)")
    p.add_argument("--augment-images", type=int, default=64,
                   help="images the paper training transform is timed on (0: skip)")
    p.add_argument("--train-steps", type=int, default=None,
                   help="timed uncached BRCD training steps (default: 3 on CUDA, 0 elsewhere)")
    p.add_argument("--train-batch-size", type=int, default=None,
                   help="default: the paper profile's student batch size")
    p.add_argument("--num-workers", type=int, default=None,
                   help="loader workers of the training steps (default: the paper profile's)")
    p.add_argument("--student-backbone", default=None, help="training steps: default the paper's")
    p.add_argument("--teacher-backbone", default=None, help="training steps: default the paper's")
    p.add_argument("--image-size", type=int, default=None,
                   help="training steps only: default the paper profile's (224)")
    p.add_argument("--code-length", type=int, default=64)
    p.add_argument("--threads", type=int, default=1, help="torch threads on the CPU")
    p.add_argument("--quick", action="store_true",
                   help="CPU throughput at batch 8 when measured; no training steps")
    p.add_argument("--out-dir", type=Path, default=DEFAULT_OUT)
    return p


def main(argv: Sequence[str] | None = None) -> list[dict]:
    import torch

    from brcd_lib.experiments.preflight import check_device, run_plan
    from brcd_lib.experiments.profiles import get_profile

    args = get_args_parser().parse_args(argv)
    try:
        args.device = check_device(args.device)
    except ValueError as exc:
        raise SystemExit(str(exc)) from None
    for name in ("batch_size", "cpu_repeats", "gpu_repeats", "code_length", "threads"):
        if getattr(args, name) < 1:
            raise SystemExit(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    cuda = args.device.startswith("cuda")
    if args.quick:
        args.batch_size, args.train_steps = min(args.batch_size, 8), 0
        args.augment_images = min(args.augment_images, 16)
    if args.train_steps is None:
        args.train_steps = 3 if cuda else 0
    if args.train_steps < 0 or args.augment_images < 0:
        raise SystemExit(f"--train-steps and --augment-images must be >= 0, got "
                         f"{args.train_steps} and {args.augment_images}")
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()

    paper = get_profile("paper")
    plan = run_plan(paper)
    sizes = paper_grid.protocol_sizes(paper)
    work = paper_grid.workload(paper, plan, sizes)
    passes, per_run = work["forward_passes"], work["forward_passes_per_run"]
    runs = paper_grid.student_runs(plan)
    rot = sum(1 for r in runs if r["rotations"])
    count_note = (f"{paper_grid.sizes_note(sizes, paper)}; {len(plan['teachers'])} teacher runs x "
                  f"{paper.teacher_train.epochs} epochs, {len(runs)} student runs x "
                  f"{paper.student_train.epochs} epochs ({len(paper.seeds)} seeds, {rot} runs "
                  "with SSKD's rotations); shared: per augmentation seed, epoch and backbone the "
                  "2 views + the most rotated run's extra copies once per phase (teachers, "
                  "students); clean features of the four sets once per backbone; upper bound "
                  "(no early stopping)")
    per_run_note = ("every run pushes 2 views + its rotated copies per training image and epoch "
                    "through its backbone and its teacher's (the per-run pipeline)")
    rows = [dict(source="grid", device="", backbone=b, quantity="forward_passes", value=n,
                 unit="images", label="COUNTED", notes=count_note if i == 0 else "")
            for i, (b, n) in enumerate(passes.items())]
    rows += [dict(source="grid", device="", backbone=b, quantity="forward_passes_per_run",
                  value=n, unit="images", label="COUNTED", notes=per_run_note if i == 0 else "")
             for i, (b, n) in enumerate(per_run.items())]
    one = dataclasses.replace(paper, seeds=paper.seeds[:1])  # the grid of the first seed alone
    one_work = paper_grid.workload(one, run_plan(one), sizes)
    for quantity, key in (("forward_passes_one_seed", "forward_passes"),
                          ("forward_passes_per_run_one_seed", "forward_passes_per_run")):
        rows += [dict(source="grid", device="", backbone=b, quantity=quantity, value=n,
                      unit="images", label="COUNTED",
                      notes=f"the same grid with seeds={one.seeds} (as issue #29 counted it)"
                      if i == 0 else "")
                 for i, (b, n) in enumerate(one_work[key].items())]
    k = len(paper.seeds)
    for b, n in passes.items():
        before = one_work["forward_passes_per_run"][b]
        rows += [dict(source="grid", device="", backbone=b, quantity="forward_passes_per_seed",
                      value=n / k, unit="images", label="COUNTED",
                      notes=f"forward_passes / {k} seeds"),
                 dict(source="grid", device="", backbone=b, quantity="fewer_per_seed",
                      value=before / (n / k), unit="x", label="COUNTED",
                      notes="forward_passes_per_run_one_seed / forward_passes_per_seed (issue "
                            "#29's target: >= 50 for vit_b_16)"),
                 dict(source="grid", device="", backbone=b, quantity="fewer_one_seed",
                      value=before / one_work["forward_passes"][b], unit="x", label="COUNTED",
                      notes="a grid of one seed: per-run pipeline / shared")]
        for part, count in work["online_banks"]["passes_by_part"][b].items():
            rows.append(dict(source="grid", device="", backbone=b,
                             quantity=f"forward_passes_{part}", value=count, unit="images",
                             label="COUNTED",
                             notes={"teachers": "the teachers' phase: 2 views per image and epoch",
                                    "students": "the students' phase: 2 views per image and epoch",
                                    "rotated": "the students' phase: the rotated copies of view 1 "
                                               "(SSKD: 3 per image and epoch)"}[part]))
    steps = work["head_steps"]["teacher"] + work["head_steps"]["student"]
    rows.append(dict(source="grid", device="", backbone="heads", quantity="head_steps_one_seed",
                     value=one_work["head_steps"]["teacher"] + one_work["head_steps"]["student"],
                     unit="steps", label="COUNTED", notes=f"seeds={one.seeds}"))
    bank = work["online_banks"]
    rows.append(dict(source="grid", device="", backbone="banks", quantity="bank_bytes_per_epoch",
                     value=bank["bytes_per_epoch"], unit="bytes", label="COUNTED",
                     notes=f"one epoch of the students' phase: every backbone's 2 views + rotated "
                           f"copies x 5,000 images x its feature size x {bank['item_bytes']} "
                           "bytes (bf16); in memory when one process trains the grid, "
                           f"{bank['disk_bytes_with_workers']:,} bytes on disk at a time when "
                           "worker processes train the students"))
    rows.append(dict(source="grid", device="", backbone="heads", quantity="head_steps",
                     value=steps, unit="steps", label="COUNTED",
                     notes=f"teachers {work['head_steps']['teacher']:,} + students "
                           f"{work['head_steps']['student']:,}: epochs x (5,000 // batch 64) "
                           "steps of every run"))

    # ---- CPU: latency.csv where it has the backbone, measured here otherwise
    teachers = sorted({t["backbone"] for t in plan["teachers"]})
    csv_path = args.latency_csv or (args.out_dir / "latency.csv")
    lat = {} if args.cpu_source == "measure" else read_latency(csv_path, list(passes),
                                                               args.batch_size)
    missing = [b for b in passes if b not in lat]
    if missing and args.cpu_source == "latency":
        raise SystemExit(f"{csv_path} lacks the paper group's backbone(s) {missing} at a batch "
                         f"<= {args.batch_size}; run `python -m benchmarks.bench_latency` first "
                         "or use --cpu-source auto / measure")
    cpu_ips = {b: v[0] for b, v in lat.items()}
    cpu_notes = {b: v[2] for b, v in lat.items()}
    if missing:
        measured = measure_forward(paper, missing, device="cpu", batch_size=args.batch_size,
                                   warmup=1, repeats=args.cpu_repeats, teachers=teachers)
        cpu_ips.update({b: v[0] for b, v in measured.items()})
        cpu_notes.update({b: v[1] for b, v in measured.items()})
    cpu_dev = _device_name("cpu") + (" and latency.csv" if lat else "")
    rows += hours_rows("cpu", cpu_dev, cpu_ips, passes, label="MEASURED", ips_notes=cpu_notes)

    # ---- GPU: measured on CUDA, else gpu_check.json of a GPU run, else issue #29's H200 figures
    if cuda:
        measured = measure_forward(paper, list(passes), device=args.device,
                                   batch_size=args.batch_size, warmup=3, repeats=args.gpu_repeats,
                                   teachers=teachers)
        ips = {b: v[0] for b, v in measured.items()}
        rows += hours_rows("gpu", _device_name(args.device), ips, passes, label="MEASURED",
                           ips_notes={b: v[1] for b, v in measured.items()})
        rows += hours_rows("gpu per run", _device_name(args.device), ips, per_run,
                           label="MEASURED", ips_notes={b: v[1] for b, v in measured.items()})
    else:
        ips, label, note, other = gpu_rates(args.gpu_check or (args.out_dir / "gpu_check.json"))
        notes = {b: f"{label}: {note}" for b in ips}
        rows += hours_rows("gpu", other["device"], ips, passes, label=label, ips_notes=notes)
        rows += hours_rows("gpu per run", other["device"], ips, per_run, label=label,
                           ips_notes=notes)
        augment_h = work["augmented_views"] / other["augment"] / 3600
        heads_h = steps / other["heads_alone"] / 3600
        forward_h = sum(passes[b] / ips[b] for b in passes) / 3600
        rows += [dict(source="gpu", device=other["device"], backbone="-",
                      quantity="augment_views_per_s", value=float(other["augment"]),
                      unit="views/s", label=label,
                      notes=f"{note}" + ("; BatchAugment at 224 px, batch 512 (the kit's batched "
                                         "paper views were not timed there)"
                                         if label == "MEASURED ELSEWHERE" else "")),
                 dict(source="gpu", device=other["device"], backbone="heads",
                      quantity="head_steps_per_s", value=float(other["heads_alone"]),
                      unit="steps/s", label=label, notes=f"BRCD, one run, batch 64; {note}"),
                 dict(source="gpu", device=other["device"], backbone="all",
                      quantity="grid_hours_one_run_at_a_time",
                      value=forward_h + augment_h + heads_h, unit="h", label="EXTRAPOLATED",
                      notes=f"forward {forward_h:.3g} h + augmentation {augment_h:.3g} h + heads "
                            f"{heads_h:.3g} h at the one-run rate (no overlap)")]
        budget = 8 * 3600 - (forward_h + augment_h) * 3600
        need = steps / budget if budget > 0 else float("inf")
        rows += [dict(source="gpu", device=other["device"], backbone="heads",
                      quantity="aggregate_steps_per_s_for_8h", value=need, unit="steps/s",
                      label="EXTRAPOLATED",
                      notes="head steps / (8 h - forward - augmentation hours): the aggregate "
                            "head rate the grid needs to fit in 8 hours"),
                 dict(source="gpu", device=other["device"], backbone="heads",
                      quantity="aggregate_for_8h_over_one_run", value=need / other["heads_alone"],
                      unit="x", label="EXTRAPOLATED",
                      notes="aggregate_steps_per_s_for_8h / head_steps_per_s of one run")]
        if other["heads_aggregate"]:
            heads_agg_h = steps / other["heads_aggregate"] / 3600
            rows.append(dict(source="gpu", device=other["device"], backbone="all",
                             quantity="grid_hours_trained_together",
                             value=forward_h + augment_h + heads_agg_h, unit="h",
                             label="EXTRAPOLATED",
                             notes=f"heads at {other['heads_aggregate']:.4g} steps/s in "
                                   "aggregate"))
    if args.augment_images:
        rows += augmentation_rows(paper, work, images=args.augment_images)
    if args.train_steps:
        rows += train_step_rows(args, paper, runs=len(runs), n_train=sizes["train"])

    header = [f"Paper profile grid (`preflight.run_plan('paper')`): {len(plan['teachers'])} "
              f"teacher runs, {len(runs)} student runs; {paper_grid.sizes_note(sizes, paper)}."]
    text = markdown(rows, args, time.perf_counter() - t0, header)
    write_outputs(args.out_dir, "gpu_estimate", rows, FIELDS, text)
    print(text)
    return rows


if __name__ == "__main__":
    main()
