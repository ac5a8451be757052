"""Query latency and encoding throughput of each teacher vs its students, measured interleaved.

Two groups of hashing networks with random weights (latency does not depend on the weights),
derived from the profiles and built as the kit builds them (``benchmarks.nets``: the profile's
``ModelConfig`` with its head, hidden width and ``BackboneConfig.kwargs``):

* ``cpu``   the ``fashion`` profile's teacher and student (its SimCLR stand-in backbones, e.g.
            ``resnet_teacher(pool_grid=2)`` and ``small_cnn_s(width=8)``) at its image size (28 px);
* ``paper`` the ``paper`` profile's teacher (``vit_b_16``) and the students of its backbone
            pairs with that teacher (``plan.pair_models``: ``efficientnet_b0``,
            ``mobilenet_v2``, ``resnet18``, each with the profile student's settings and head)
            at 224 px, in float32 (the bf16 / channels-last options are GPU-only in the kit).

For each group and batch size, every network first runs ``warmup`` untimed calls of ``net.encode``
(backbone + head + sign) under ``torch.inference_mode`` on one random batch; then come ``rounds``
timed rounds, and in each round every network of the group runs once, in an order rotated from
round to round, so a change of machine load hits all networks of a round alike. Reported per
network: median latency over the rounds and its spread (min and max), throughput = batch / median;
per student: speed-up = the teacher's median latency / the student's, and the min and max over the
rounds of the paired per-round ratio (teacher time / student time in the same round). Parameters
and FLOPs per image come from ``brcd_lib.models.complexity``. torch runs on ``--threads`` threads
(default 1: on a loaded 2-core machine two OpenMP threads wait on each other).

    python -m benchmarks.bench_latency [--quick] [--out-dir DIR]

writes ``latency.csv`` and ``latency.md``.
"""
from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks.run import DEFAULT_OUT, machine_notes, markdown_table, write_outputs  # noqa: E402

GROUP_NAMES = ("cpu", "paper")


@dataclass(frozen=True)
class Group:
    """A teacher and its students (ModelConfigs) of one profile, at the profile's image size."""

    name: str
    profile: str
    image_size: int
    teacher: Any
    students: tuple


def get_group(name: str) -> Group:
    """Group ``name`` (``cpu``: the fashion profile; ``paper``: the paper profile)."""
    from brcd_lib.experiments.profiles import get_profile

    if name == "cpu":
        p = get_profile("fashion")
        return Group(name, p.name, p.data.image_size, p.teacher, (p.student,))
    if name == "paper":
        from brcd_lib.experiments import plan as kit_plan

        p = get_profile("paper")
        # the student-backbone axis of the kit's backbone pairs: the profile's teacher over
        # each student backbone, each with the profile student's settings and head
        students = tuple(x["student_model"] for x in kit_plan.pair_models(p)
                         if x["teacher"] == p.teacher.backbone.name)
        return Group(name, p.name, p.data.image_size, p.teacher, students or (p.student,))
    raise ValueError(f"unknown group {name!r}; valid groups: {', '.join(GROUP_NAMES)}")


FIELDS = ["group", "profile", "role", "backbone", "image_size", "code_length", "params_M",
          "trainable_params_M", "gflops_per_image", "batch_size", "latency_ms", "latency_min_ms",
          "latency_max_ms", "throughput_img_s", "latency_speedup_vs_teacher", "speedup_min",
          "speedup_max", "throughput_ratio_vs_teacher", "warmup", "rounds", "device",
          "load_before", "load_after", "notes"]


def build_nets(group: str, *, code_length: int) -> dict[str, object]:
    """{backbone label: hashing network with random weights, in eval mode}, teacher first (the
    label is ``name(kwargs)``, see ``benchmarks.nets.describe``)."""
    from benchmarks.nets import describe, network_from_config

    g = get_group(group)
    nets = {describe(g.teacher): network_from_config(g.teacher, code_length, role="teacher")}
    for model in g.students:
        label = describe(model)
        if label in nets:
            raise ValueError(f"group {group!r} lists backbone {label} twice")
        nets[label] = network_from_config(model, code_length, role="student")
    return nets


def interleaved_latency(nets: dict[str, object], *, image_size: int, batch_size: int,
                        warmup: int, rounds: int) -> dict[str, list[float]]:
    """Seconds per ``encode`` call of every network, one call per network per round, the order of
    the networks rotated from round to round; ``warmup`` untimed calls of each first."""
    import torch

    names = list(nets)
    x = torch.randn(batch_size, 3, image_size, image_size)
    times: dict[str, list[float]] = {name: [] for name in names}
    with torch.inference_mode():
        for _ in range(warmup):
            for name in names:
                nets[name].encode(x)
        for r in range(rounds):
            shift = r % len(names)
            for name in names[shift:] + names[:shift]:
                t0 = time.perf_counter()
                nets[name].encode(x)
                times[name].append(time.perf_counter() - t0)
    return times


def _load() -> str:
    import os

    try:
        return "{:.2f} / {:.2f} / {:.2f}".format(*os.getloadavg())
    except OSError:
        return "n/a"


def measure_group(group: str, *, code_length: int, batch_sizes: Sequence[int], warmup: int,
                  rounds: int, notes: str) -> list[dict]:
    """Long rows (one per network and batch size) with ratios against the group's teacher."""
    import torch

    from brcd_lib.models.complexity import count_flops, count_parameters

    from benchmarks.nets import describe

    g = get_group(group)
    size, teacher = g.image_size, describe(g.teacher)
    nets = build_nets(group, code_length=code_length)
    cpu = platform.processor() or platform.machine()
    device = f"cpu ({cpu}, {torch.get_num_threads()} threads)"
    rows = []
    for b in batch_sizes:
        load_before = _load()
        times = interleaved_latency(nets, image_size=size, batch_size=b, warmup=warmup,
                                    rounds=rounds)
        load_after = _load()
        ref = times[teacher]
        for name, net in nets.items():
            t = times[name]
            med = statistics.median(t)
            paired = [a / s for a, s in zip(ref, t)]
            rows.append({
                "group": group, "profile": g.profile,
                "role": "teacher" if name == teacher else "student",
                "backbone": name, "image_size": size, "code_length": code_length,
                "params_M": count_parameters(net) / 1e6,
                "trainable_params_M": count_parameters(net, trainable_only=True) / 1e6,
                "gflops_per_image": count_flops(net, (1, 3, size, size)) / 1e9,
                "batch_size": b, "latency_ms": 1e3 * med, "latency_min_ms": 1e3 * min(t),
                "latency_max_ms": 1e3 * max(t), "throughput_img_s": b / med,
                "latency_speedup_vs_teacher": statistics.median(ref) / med,
                "speedup_min": min(paired), "speedup_max": max(paired),
                "throughput_ratio_vs_teacher": statistics.median(ref) / med,
                "warmup": warmup, "rounds": rounds, "device": device,
                "load_before": load_before, "load_after": load_after, "notes": notes})
    return rows


def markdown(rows: list[dict], args, elapsed: float) -> str:
    lines = ["# Query latency and throughput: teachers vs students", "",
             f"Generated by `benchmarks/bench_latency.py` in {elapsed:.0f} s"
             f"{' (--quick)' if args.quick else ''}. Latency = wall time of `net.encode` "
             "(backbone + head + sign) under `torch.inference_mode` on a random batch, random "
             "weights (latency does not depend on them). Per group and batch size: warm-up "
             "calls, then interleaved rounds (every network once per round, order rotated); "
             "median over the rounds and its min-max. Throughput = batch / median latency. "
             "Speed-up = the group teacher's median latency / the network's; its min-max is the "
             "range over the rounds of the paired ratio (teacher / network in the same round).",
             "", f"Machine at the start: {rows[0]['notes'] if rows else ''}.", ""]
    table = []
    for r in rows:
        table.append({**r,
                      "latency_ms (min-max)": f"{r['latency_ms']:.2f} ({r['latency_min_ms']:.2f}"
                                              f"-{r['latency_max_ms']:.2f})",
                      "speed-up (min-max)": f"{r['latency_speedup_vs_teacher']:.2f} "
                                            f"({r['speedup_min']:.2f}-{r['speedup_max']:.2f})",
                      "load before -> after": f"{r['load_before']} -> {r['load_after']}"})
    fields = ["group", "profile", "role", "backbone", "image_size", "params_M", "gflops_per_image",
              "batch_size", "rounds", "latency_ms (min-max)", "throughput_img_s",
              "speed-up (min-max)", "load before -> after"]
    lines.append(markdown_table(table, fields, {"params_M": ".2f", "gflops_per_image": ".3f",
                                                "throughput_img_s": ".1f"}))
    return "\n".join(lines) + "\n"


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Latency / throughput of teachers vs students.")
    p.add_argument("--groups", nargs="+", default=list(GROUP_NAMES), choices=list(GROUP_NAMES),
                   help="cpu: the fashion profile's teacher and student; paper: the paper "
                        "profile's teacher and student backbones")
    p.add_argument("--code-length", type=int, default=64)
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 64])
    p.add_argument("--paper-batch-sizes", type=int, nargs="+", default=None,
                   help="batch sizes of the 224 px group (default: --batch-sizes)")
    p.add_argument("--repeats", type=int, default=21,
                   help="interleaved timed rounds per batch size (cpu group)")
    p.add_argument("--warmup", type=int, default=3, help="untimed calls first (cpu group)")
    p.add_argument("--paper-repeats", type=int, default=7,
                   help="interleaved timed rounds per batch size of the 224 px group (a ViT-B/16 "
                        "batch of 64 takes tens of seconds on 2 shared cores)")
    p.add_argument("--paper-warmup", type=int, default=1)
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads (1: on a loaded CPU, 2 OpenMP threads wait on each other)")
    p.add_argument("--quick", action="store_true",
                   help="7 rounds everywhere, and batch 1 and 8 instead of 64 at 224 px")
    p.add_argument("--out-dir", type=Path, default=DEFAULT_OUT)
    return p


def main(argv: Sequence[str] | None = None) -> list[dict]:
    import torch

    args = get_args_parser().parse_args(argv)
    if args.quick:
        args.repeats, args.warmup, args.paper_repeats, args.paper_warmup = 7, 1, 7, 1
        args.paper_batch_sizes = args.paper_batch_sizes or [1, 8]
    if min(args.repeats, args.paper_repeats) < 1:
        raise SystemExit("--repeats and --paper-repeats must be >= 1")
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    rows: list[dict] = []
    for group in args.groups:
        paper = group == "paper"
        batch_sizes = (args.paper_batch_sizes or args.batch_sizes) if paper else args.batch_sizes
        notes = machine_notes(args.threads)
        rows += measure_group(group, code_length=args.code_length, batch_sizes=batch_sizes,
                              warmup=args.paper_warmup if paper else args.warmup,
                              rounds=args.paper_repeats if paper else args.repeats, notes=notes)
        print(f"{group} done ({time.perf_counter() - t0:.0f} s)", flush=True)
    text = markdown(rows, args, time.perf_counter() - t0)
    write_outputs(args.out_dir, "latency", rows, FIELDS, text)
    print(text)
    return rows


if __name__ == "__main__":
    main()
