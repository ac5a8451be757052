"""Train one hashing teacher or one distilled student from the command line.

    python -m brcd_lib.train --profile smoke --role teacher --bits 16
    python -m brcd_lib.train --profile smoke --role student --bits 16 --method brcd --seed 0
    torchrun --nproc_per_node=4 -m brcd_lib.train --profile paper --role student --bits 64 --method brcd

The run goes through :class:`brcd_lib.experiments.experiment.Experiment`, so it shares the notebooks' run cache
(``<cache>/runs/<profile>/<role>-<key>``): a finished run is loaded, an interrupted one resumes
from ``last.pt`` (written at every validation) unless ``--no-resume`` is given. The result
record (metrics, validation history, provenance) is printed as JSON on stdout and, with
``--output-dir``, written there atomically. Under ``torchrun`` every rank trains its share of
each global batch (:mod:`brcd_lib.training.distributed`); only rank 0 prints and writes.

Budgets and settings of the profile can be changed for one run: ``--epochs``, ``--eval-every``,
``--patience``, ``--batch-size``, ``--lr`` and ``--feature-views`` apply to the trained role's
:class:`~brcd_lib.config.TrainConfig`; ``--set PATH=VALUE`` (repeatable) changes any profile
field by its dotted path, e.g. ``--set teacher.backbone.ssl_epochs=1 --set brcd.n_clusters=4``.
A changed setting changes the run's cache key, so it never reuses a run trained otherwise.
"""
from __future__ import annotations

import argparse
import ast
import dataclasses
import json
import logging
import os
import sys
from typing import Any

from ..io import StorageError, atomic_write_text, ensure_writable_dir
from ..paths import cache_root
from ..training import distributed
from ..training.executors import resolve_executor, run_jobs
from ..training.engine import TrainingDiverged
from .experiment import Experiment
from .preflight import check_device
from .profiles import Profile, get_profile, list_profiles
from .runstore import RunStore, store_root

log = logging.getLogger("brcd_lib.train")

ROLES = ("teacher", "student")

# command-line option -> TrainConfig field, applied to the trained role's TrainConfig
TRAIN_OPTIONS: dict[str, str] = {
    "epochs": "epochs",
    "eval_every": "eval_every",
    "patience": "patience",
    "batch_size": "batch_size",
    "lr": "lr",
    "feature_views": "feature_views",
}


# ----------------------------------------------------------------------------------------------
# argument types
# ----------------------------------------------------------------------------------------------
def positive_int(text: str) -> int:
    """argparse type: a positive integer written in decimal (``16``; not ``0``, ``-1``, ``1.5``)."""
    try:
        value = int(text, 10)
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a positive integer (e.g. 16, 32, 64)") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive integer (e.g. 16, 32, 64)")
    return value


def non_negative_int(text: str) -> int:
    try:
        value = int(text, 10)
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(f"{text!r} is not a non-negative integer") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a non-negative integer")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number") from None
    if not value > 0 or value != value or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive finite number")
    return value


# ----------------------------------------------------------------------------------------------
# profile overrides
# ----------------------------------------------------------------------------------------------
def parse_assignment(text: str) -> tuple[str, Any]:
    """``"a.b.c=VALUE"`` -> ``("a.b.c", value)``; VALUE is a Python literal (``1``, ``0.5``,
    ``None``, ``'x'``, ``{"k": 1}``) or else a plain string."""
    path, sep, raw = text.partition("=")
    path = path.strip()
    if not sep or not path:
        raise ValueError(f"--set expects PATH=VALUE (e.g. teacher_train.epochs=5), got {text!r}")
    raw = raw.strip()
    try:
        value = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        value = raw
    return path, value


def _fields(obj: Any) -> list[str]:
    if dataclasses.is_dataclass(obj):
        return [f.name for f in dataclasses.fields(obj)]
    if isinstance(obj, dict):
        return [str(k) for k in obj]
    return []


def _check_type(path: str, old: Any, new: Any) -> Any:
    if old is None or new is None:
        return new
    if isinstance(old, bool) or isinstance(new, bool):
        if isinstance(old, bool) and isinstance(new, bool):
            return new
        raise ValueError(f"{path} takes {type(old).__name__} values like {old!r}, got {new!r}")
    if isinstance(old, float) and isinstance(new, int):
        return float(new)
    if isinstance(old, tuple) and isinstance(new, list):
        return tuple(new)
    if not isinstance(new, type(old)):
        raise ValueError(f"{path} takes {type(old).__name__} values like {old!r}, got "
                         f"{type(new).__name__} {new!r}")
    return new


def _override(obj: Any, parts: list[str], value: Any, path: str) -> Any:
    head, rest = parts[0], parts[1:]
    if dataclasses.is_dataclass(obj):
        names = _fields(obj)
        if head not in names:
            raise ValueError(f"unknown setting {path!r}: {type(obj).__name__} has no field "
                             f"{head!r}; valid fields: {', '.join(names)}")
        old = getattr(obj, head)
        new = _override(old, rest, value, path) if rest else _check_type(path, old, value)
        try:
            return dataclasses.replace(obj, **{head: new})
        except ValueError as err:  # the config's own checks (e.g. TrainConfig.__post_init__)
            if str(err).startswith(f"{path}: ") or str(err).startswith("unknown setting"):
                raise
            raise ValueError(f"{path}: {err}") from None
    if isinstance(obj, dict):
        if rest:
            if head not in obj:
                raise ValueError(f"unknown setting {path!r}: no key {head!r}; keys: "
                                 f"{', '.join(map(str, obj)) or '(none)'}")
            return {**obj, head: _override(obj[head], rest, value, path)}
        # dict entries are free-form keyword arguments (e.g. brcd.n_clusters, data.protocol.subset)
        return {**obj, head: _check_type(path, obj.get(head), value)}
    raise ValueError(f"unknown setting {path!r}: {parts[0]!r} is inside a "
                     f"{type(obj).__name__} value, which has no fields")


def override_profile(profile: Profile, assignments: list[str] | None) -> Profile:
    """A copy of ``profile`` with every ``PATH=VALUE`` of ``assignments`` applied in order."""
    for text in assignments or []:
        path, value = parse_assignment(text)
        if path.split(".")[0] == "name":
            raise ValueError("--set name=... is not allowed: the profile's name selects the run "
                             "cache folder; pick another --profile instead")
        profile = _override(profile, path.split("."), value, path)
    return profile


def build_profile(args: argparse.Namespace) -> Profile:
    """The profile of ``args.profile`` with the command line's changes applied."""
    profile = get_profile(args.profile)
    profile = override_profile(profile, args.set)
    field = f"{args.role}_train"
    changes = {cfg_field: getattr(args, opt) for opt, cfg_field in TRAIN_OPTIONS.items()
               if getattr(args, opt, None) is not None}
    if changes:
        profile = dataclasses.replace(
            profile, **{field: dataclasses.replace(getattr(profile, field), **changes)})
    if args.role == "teacher" and args.seed is not None:
        profile = dataclasses.replace(profile, teacher_seed=args.seed)
    return profile


# ----------------------------------------------------------------------------------------------
# CLI
# ----------------------------------------------------------------------------------------------
def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m brcd_lib.train",
                                description="Train one BRCD-kit teacher or student "
                                "(torchrun --nproc_per_node=N -m brcd_lib.train for several GPUs)",
                                add_help=add_help)
    p.add_argument("--profile", default="smoke", choices=list_profiles(),
                   help="the profile (data, models, budgets); default smoke")
    p.add_argument("--role", default="student", choices=ROLES, help="what to train")
    p.add_argument("--bits", default=16, type=positive_int, help="code length L (default 16)")
    p.add_argument("--method", default="brcd",
                   help="distiller of the student (a name from brcd_lib.distill.list_distillers; "
                        "'none' = no distillation); ignored for --role teacher")
    p.add_argument("--seed", default=None, type=non_negative_int,
                   help="student seed (default 0); for --role teacher it replaces the profile's "
                        "teacher seed")
    p.add_argument("--resume", default=True, action=argparse.BooleanOptionalAction,
                   help="continue an interrupted run from its last.pt (default) or restart it")
    p.add_argument("--device", default=None,
                   help="cpu, cuda or cuda:<i> (default: the profile's choice; under torchrun "
                        "cuda:<LOCAL_RANK> when CUDA is available)")
    p.add_argument("--cache-dir", default=None,
                   help="run / feature / split cache (default: $BRCD_CACHE or <repo>/.cache)")
    p.add_argument("--output-dir", default=None,
                   help="also write the result JSON to this folder")
    g = p.add_argument_group("budget of the trained role (default: the profile's)")
    g.add_argument("--epochs", type=positive_int, default=None)
    g.add_argument("--eval-every", type=positive_int, default=None,
                   help="validate (and checkpoint last.pt) every N epochs")
    g.add_argument("--patience", type=positive_int, default=None)
    g.add_argument("--batch-size", type=positive_int, default=None,
                   help="global batch (split across ranks under torchrun)")
    g.add_argument("--lr", type=positive_float, default=None)
    g.add_argument("--feature-views", type=non_negative_int, default=None,
                   help="cached augmented views per image (0 = online augmentation)")
    p.add_argument("--set", action="append", default=[], metavar="PATH=VALUE",
                   help="change any profile field, e.g. --set teacher.backbone.ssl_epochs=1 "
                        "--set brcd.n_clusters=4 --set teacher_train.epochs=10 (repeatable)")
    p.add_argument("--executor", default=None,
                   help="where the run trains: local (this process, the default), gpus (a "
                        "worker pinned to one GPU), dask / dask:<scheduler address or file> / "
                        "slurm[:N] / pbs[:N] (a Dask worker); default $BRCD_EXECUTOR or local")
    p.add_argument("--progress", default=None, action=argparse.BooleanOptionalAction,
                   help="progress bars (default: when stderr is a terminal)")
    p.add_argument("--debug", action="store_true", help="show tracebacks of input errors")
    return p


def output_name(args: argparse.Namespace) -> str:
    what = "teacher" if args.role == "teacher" else f"student_{args.method}"
    seed = "" if args.role == "teacher" else f"_seed{args.seed if args.seed is not None else 0}"
    return f"{args.profile}_{what}_{args.bits}bits{seed}.json"


def preflight(args: argparse.Namespace) -> Profile:
    """Everything that can be checked before training starts: the settings (the profile with the
    command line's changes), the device, the cache and output folders. Raises ``ValueError`` /
    :class:`~brcd_lib.io.StorageError` naming the bad value or path."""
    profile = build_profile(args)
    if args.role == "student":  # the distiller's settings (e.g. brcd.n_clusters) before training
        from ..distill import get_distiller
        from .plan import distill_kwargs

        settings = distill_kwargs(profile, args.method)
        try:
            get_distiller(args.method, **settings)
        except TypeError as err:
            raise ValueError(f"method {args.method!r} does not take the settings "
                             f"{settings}: {err}") from None
    check_device(args.device)
    ensure_writable_dir(args.cache_dir or cache_root(), what="cache folder")
    if args.output_dir is not None:
        ensure_writable_dir(args.output_dir, what="--output-dir")
    return profile


def run(args: argparse.Namespace) -> dict:
    """Train (or load) the run described by ``args``, here or on ``args.executor``; returns the
    result record."""
    preflight(args)
    spec = resolve_executor(getattr(args, "executor", None))
    if spec.kind != "local":
        return _run_on(spec, args)
    return _run_here(args)


def _run_on(spec, args: argparse.Namespace) -> dict:
    """The run sent to one worker of ``spec``; its failure raises ``RunFailed`` naming the run
    and the worker's log."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:  # started by torchrun
        raise ValueError(f"--executor {spec} sends the run to a worker; it cannot be combined "
                         "with torchrun (use one or the other)")
    logging.getLogger("distributed").setLevel(logging.WARNING)  # Dask's INFO lines: noise here
    job = {**vars(args), "executor": "local", "progress": False}
    name = (f"{args.role} {args.bits} bits" if args.role == "teacher" else
            f"{args.method} {args.bits} bits seed {args.seed if args.seed is not None else 0}")
    log_dir = RunStore(root=store_root(args.cache_dir or str(cache_root()), args.profile)).log_dir
    outcome = run_jobs(_train_job, [job], executor=spec, workers=1, names=[name],
                       log_dir=log_dir, desc="run", progress=False)[0]
    if not outcome.ok:
        raise RunFailed(f"run {name} failed on the {spec} executor: {outcome.error} "
                        f"(log: {outcome.log})")
    return outcome.result


def _train_job(job: dict) -> dict:
    """One run in a worker of an executor (the CLI's arguments as a dict)."""
    return _run_here(argparse.Namespace(**job))


class RunFailed(RuntimeError):
    """A run sent to an executor's worker failed there (the message names its log)."""


def _run_here(args: argparse.Namespace) -> dict:
    ctx = distributed.init_from_env(device=args.device)
    try:
        profile = build_profile(args)
        device = str(ctx.device) if ctx is not None else args.device
        progress = sys.stderr.isatty() if args.progress is None else args.progress
        ex = Experiment(profile, cache_dir=args.cache_dir, device=device,
                        progress=progress and distributed.is_main(), resume=args.resume)
        # rank 0 first: split files, backbone weights and SSL pretraining land in the cache once
        with distributed.main_process_first(ctx):
            ex.splits
            ex.build_network(profile.teacher, args.bits, role="teacher",
                             seed=profile.teacher_seed)
            if args.role == "student":
                ex.build_network(profile.student, args.bits, role="student",
                                 seed=args.seed or 0)
        if args.role == "teacher":
            trained = ex.teacher(args.bits)
        else:
            trained = ex.student(args.bits, method=args.method,
                                 seed=args.seed if args.seed is not None else 0)
        result = {"role": args.role, "method": None if args.role == "teacher" else args.method,
                  "run_dir": trained.run_dir, "world_size": distributed.world_size(),
                  **trained.record}
        if distributed.is_main() and args.output_dir:
            path = os.path.join(args.output_dir, output_name(args))
            atomic_write_text(path, json.dumps(result, indent=1))
            log.info("result written to %s", path)
        distributed.barrier(ctx)
        return result
    finally:
        distributed.cleanup()


# errors that come from the inputs (names, files, settings, folders, a full disk) or from the
# run diverging: printed as one line unless --debug
_INPUT_ERRORS = (ValueError, FileNotFoundError, StorageError)


def main(args: argparse.Namespace | list[str] | None = None) -> int:
    if not isinstance(args, argparse.Namespace):
        args = get_args_parser().parse_args(args)
    rank_ = os.environ.get("RANK", "0")  # torchrun's; the process group is gone after run()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format=f"%(asctime)s rank{rank_} %(levelname)s %(name)s: %(message)s")
    try:
        result = run(args)
    except RunFailed as exc:
        if args.debug:
            raise
        print(f"brcd_lib.train: {exc}", file=sys.stderr)
        return 1
    except TrainingDiverged as exc:
        if args.debug:
            raise
        print(f"brcd_lib.train: training diverged: {exc}", file=sys.stderr)
        return 3
    except _INPUT_ERRORS as exc:
        if args.debug:
            raise
        print(f"brcd_lib.train: error: {exc}", file=sys.stderr)
        return 2
    if rank_ == "0":
        print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
