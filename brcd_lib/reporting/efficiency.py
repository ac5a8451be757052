"""Parameters, FLOPs and measured query latency / encoding throughput of hashing networks.

Latency is the median wall time of ``net.encode`` (backbone + head + sign) under
``torch.inference_mode`` over ``repeats`` runs after ``warmup`` runs, on the given device and
thread count; it is a property of this machine and is reported with the device description.
"""
from __future__ import annotations

import statistics
import time

import pandas as pd
import torch

from ..models.complexity import count_flops, count_parameters
from ..provenance import device_description
from .figures import seed_summary


@torch.inference_mode()
def measure_latency(net, *, image_size: int, batch_size: int, device: str = "cpu",
                    warmup: int = 3, repeats: int = 10) -> float:
    """Median seconds per ``encode`` call on a random batch."""
    net = net.to(device).eval()
    x = torch.randn(batch_size, 3, image_size, image_size, device=device)
    for _ in range(warmup):
        net.encode(x)
    times = []
    for _ in range(repeats):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        net.encode(x)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def efficiency_table(nets: dict[str, torch.nn.Module], *, image_size: int, device: str = "cpu",
                     batch_sizes=(1, 64), repeats: int = 10, warmup: int = 3) -> pd.DataFrame:
    """One row per model: parameters (all / trainable), FLOPs per image, latency per batch size
    (ms) and encoding throughput (images/s) for each batch size."""
    rows = []
    for name, net in nets.items():
        row = {"model": name,
               "params_M": count_parameters(net) / 1e6,
               "trainable_params_M": count_parameters(net, trainable_only=True) / 1e6,
               "gflops_per_image": count_flops(net, (1, 3, image_size, image_size)) / 1e9}
        for b in batch_sizes:
            sec = measure_latency(net, image_size=image_size, batch_size=b, device=device,
                                  repeats=repeats, warmup=warmup)
            row[f"latency_ms_b{b}"] = 1e3 * sec
            row[f"throughput_img_s_b{b}"] = b / sec
        row["device"] = device_description(device)
        rows.append(row)
    return pd.DataFrame(rows)


def tradeoff_frame(*, teacher: tuple[str, float, float], students: dict[str, list[float]],
                   student_latency_ms: float) -> pd.DataFrame:
    """The points of the mAP-vs-latency figure: the teacher (name, batch-1 latency in ms, test
    mAP of its one run) and each student (label -> its test mAP over seeds, all at
    ``student_latency_ms``), as the mean over seeds with the 95 % t-interval half-width
    (``half``) and the seed count (``n``). Columns: model, latency_ms, map, half, n."""
    rows = [{"model": teacher[0], "latency_ms": float(teacher[1]), "map": float(teacher[2]),
             "half": 0.0, "n": 1}]
    for label, values in students.items():
        values = [float(v) for v in values if v is not None]
        if not values:
            raise ValueError(f"no test mAP for {label!r}: the student runs of its seeds are "
                             "missing (run notebook 04 first)")
        s = seed_summary(pd.DataFrame({"k": label, "value": values}), ["k"]).iloc[0]
        rows.append({"model": label, "latency_ms": float(student_latency_ms),
                     "map": float(s["mean"]), "half": float(s["half"]), "n": int(s["n"])})
    return pd.DataFrame(rows)
