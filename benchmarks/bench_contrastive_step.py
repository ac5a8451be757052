"""Per-step time of the CRD and CRCD distillation terms on the digits profile's shapes.

One step = forward + backward of the distiller alone (training mode, so the memory banks are
updated), student codes of a batch of 64 with gradient, 1 torch thread. Shapes of the digits
profile: n_train = 1,000 (``--n-train``), embedding 128, CRD with 500 negatives, CRCD with 128
(the profile's setting) and 500 (the paper's). Prints the median and the quartiles of the wall
time over ``--steps`` timed steps after ``--warmup`` untimed ones, and the median CPU time of the
process (less sensitive to other jobs on a shared machine than the wall time).

    python -m benchmarks.bench_contrastive_step [--bits 32] [--n-train 1000] [--steps 30]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from brcd_lib.distill import DistillBatch, DistillContext, get_distiller  # noqa: E402

CASES = (("crd", 500), ("crcd", 128), ("crcd", 500))


def time_case(name: str, n_negatives: int, *, bits: int, n_train: int, batch: int, steps: int,
              warmup: int, seed: int = 0) -> tuple[list[float], list[float]]:
    g = torch.Generator().manual_seed(seed)
    codes = torch.randint(0, 2, (n_train, bits), generator=g).float() * 2 - 1
    d = get_distiller(name, n_negatives=n_negatives)
    d.prepare(DistillContext(teacher_train_codes=codes, n_train=n_train, code_length=bits, seed=seed))
    d.train()
    times, cpu = [], []
    for step in range(warmup + steps):
        index = torch.randperm(n_train, generator=g)[:batch]
        student = (torch.randint(0, 2, (batch, bits), generator=g).float() * 2 - 1).requires_grad_(True)
        b = DistillBatch(student=student, student_other=student.detach(), teacher=codes[index],
                         teacher_other=codes[index], index=index)
        t0, c0 = time.perf_counter(), time.process_time()
        d(b).backward()
        if step >= warmup:
            times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
    return times, cpu


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bits", type=int, default=32)
    p.add_argument("--n-train", type=int, default=1000)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--warmup", type=int, default=3)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    print(f"bits {args.bits}, n_train {args.n_train}, batch {args.batch}, 1 thread")
    for name, k in CASES:
        t, c = time_case(name, k, bits=args.bits, n_train=args.n_train, batch=args.batch,
                         steps=args.steps, warmup=args.warmup)
        q = statistics.quantiles(t, n=4)
        print(f"{name:5s} negatives {k:4d}: wall median {1e3 * statistics.median(t):8.2f} ms "
              f"(quartiles {1e3 * q[0]:.2f} - {1e3 * q[2]:.2f} ms), CPU median "
              f"{1e3 * statistics.median(c):8.2f} ms, {len(t)} steps")


if __name__ == "__main__":
    main()
