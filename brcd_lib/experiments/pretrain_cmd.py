"""``python -m brcd_lib.pretrain --profile X``: the stand-in for downloading ImageNet weights.

SimCLR-pretrains the profile's teacher and student backbones on every unlabelled image the
protocol allows (the profile's ``ssl_pool``: the database, never a validation or query image),
with a checkpoint after every epoch (a killed run resumes where it stopped, bit-identical to an
uninterrupted one), and exports each as a ``weights_only`` state dict with a JSON sidecar (SHA-256,
recipe, cache key, epochs, losses, wall and CPU seconds, commit, versions, CPU) into
``brcd_lib/weights`` (or ``--out``). ``make reproduce`` then loads them when their cache key and
SHA-256 match the profile's recipe, and pretrains again otherwise (saying so, with an estimate).

Without ``--force`` a backbone whose committed weights already match is left alone.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

from ..paths import portable, weights_root


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m brcd_lib.pretrain", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--profile", default="digits", help="profile whose backbones to pretrain")
    p.add_argument("--roles", nargs="+", default=["teacher", "student"],
                   choices=["teacher", "student"])
    p.add_argument("--out", default=None, help="folder of the weight files (default "
                                               "brcd_lib/weights, where the profiles look)")
    p.add_argument("--cache-dir", default=None, help="cache of the pretraining and its "
                                                     "checkpoints (default $BRCD_CACHE or .cache)")
    p.add_argument("--force", action="store_true",
                   help="pretrain even when committed weights match (to check or renew them)")
    return p


def _file_name(profile: str, role: str, bb) -> str:
    """``fashion_student_small_cnn_s_w8.pt``: profile, role, backbone and its width."""
    width = bb.kwargs.get("width")
    return f"{profile}_{role}_{bb.name}" + (f"_w{width}" if width else "") + ".pt"


def main(argv: list[str] | None = None) -> int:
    import torch

    from ..models.pretrain import export_pretrained, tensor_fingerprint
    from .experiment import Experiment
    from .plan import ladder_models, pair_models
    from .profiles import get_profile

    args = get_args_parser().parse_args(argv)
    try:
        profile = get_profile(args.profile)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    out = os.path.abspath(args.out) if args.out else str(weights_root())
    exp = Experiment(profile, cache_dir=args.cache_dir, workers=None)
    models = [(role, getattr(profile, role)) for role in args.roles]
    models += [(m_role, p[f"{m_role}_model"]) for p in pair_models(profile)  # backbone pairs
               for m_role in args.roles if p[m_role] != getattr(profile, m_role).backbone.name]
    if "student" in args.roles:  # the capacity ladder's student backbones
        models += [("student", r["student_model"]) for r in ladder_models(profile)]
    done = set()
    for role, model in models:
        bb = model.backbone
        if (role, bb.name, repr(sorted(bb.kwargs.items()))) in done:
            continue
        done.add((role, bb.name, repr(sorted(bb.kwargs.items()))))
        if bb.committed_weights:
            print(f"[skip] {role}: profile {profile.name} loads the committed weights "
                  f"{bb.committed_weights} (made by another profile's pretraining)")
            continue
        if bb.ssl_epochs <= 0:
            print(f"[skip] {role}: profile {profile.name} does not pretrain its {bb.name} "
                  "(ssl_epochs = 0)")
            continue
        dirs = () if args.force else (out,)
        t0 = time.time()
        backbone = exp.pretrained_backbone(model, role=role, weights_dirs=dirs)
        info = backbone.ssl_pretrain_info
        if info.get("cache_hit") == "committed":
            print(f"[ok  ] {role}: {portable(info['path'])} matches the recipe (SHA-256 "
                  f"{info['sha256'][:12]}); --force pretrains it again")
            continue
        images = getattr(exp.splits, bb.ssl_pool).images
        data = {"dataset": profile.data.name, "split": bb.ssl_pool,
                "split_hash": exp.splits.split_hash, "n_images": int(len(images)),
                "pool": f"every {bb.ssl_pool} image of the protocol",
                "images_sha256": tensor_fingerprint(torch.as_tensor(images)),
                "excluded": "validation and query images (never seen by pretraining)"}
        os.makedirs(out, exist_ok=True)
        path = os.path.join(out, _file_name(profile.name, role, bb))
        side = export_pretrained(backbone, path, data=data, extra={
            "role": role, "profile": profile.name, "call_wall_seconds": time.time() - t0,
            "script": "python -m brcd_lib.pretrain"})
        print(f"[done] {role}: {portable(path)} ({side['bytes']:,} bytes, SHA-256 "
              f"{side['sha256'][:12]}, {side['train_seconds'] or 0:.0f} s of SimCLR)")
    return 0
