"""Checks that run before any training: the device, the folders, the data; and for the ``paper``
profile an estimate of the real run's time and disk.

* :func:`check_profile` / :func:`require_profile` -- in a second, without reading or downloading
  anything, what a profile needs (a GPU, the dataset's files, ImageNet weights) and what this
  machine lacks; ``require_profile`` raises :class:`ProfileNotReady` with one message and the fix.
  The notebook runner calls it before it starts a kernel and every notebook's setup cell before it
  builds anything. Downloads happen only when asked for: ``BRCD_DOWNLOAD=1`` (or
  ``python -m brcd_lib.reproduce --download``) lets the data layer fetch a missing dataset;

* :func:`check_device` -- ``--device nope`` or ``cuda`` on a machine without a GPU is a clear
  ``ValueError`` at once, not a traceback after the data was loaded;
* :func:`check` -- everything a profile needs before its first notebook runs (GPU, data, writable
  cache and results folders, free disk) and, with ``estimate=True``, the number of training runs,
  backbone forward passes, feature-cache bytes and (measured on this machine's device) the hours
  the notebook sequence will take. Notebook 01 (or a user) calls it; it never trains.
"""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time
from dataclasses import dataclass, field
from typing import Any

import torch

from ..data import DatasetNotAvailableError, get_dataset, locate_files
from ..data.registry import dataset_parameters
from ..distill import get_distiller
from ..io import StorageError, ensure_writable_dir
from ..models import create_backbone
from ..models.heads import create_head
from ..paths import cache_root, results_root
from . import plan
from .plan import pair_models as _pair_models
from .profiles import Profile, get_profile
from ..training.together import AHEAD

__all__ = ["check_device", "Preflight", "check", "run_plan", "ENV_DOWNLOAD", "download_allowed",
           "Readiness", "ProfileNotReady", "check_profile", "require_profile"]


def check_device(device: str | None) -> str | None:
    """``device`` as a canonical string (None stays None: the profile decides). An unknown
    device, or CUDA on a machine without one, raises ``ValueError`` naming it and the fix."""
    if device is None:
        return None
    if isinstance(device, torch.device):
        device = str(device)
    if not isinstance(device, str) or not device.strip():
        raise ValueError(f"device must be cpu, cuda or cuda:<i>, got {device!r}")
    try:
        dev = torch.device(device.strip())
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"unknown device {device!r}; use cpu, cuda or cuda:<i> "
                         f"({str(exc).splitlines()[0]})") from None
    if dev.type == "cuda":
        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if n == 0:
            raise ValueError(f"device {device!r} needs a CUDA GPU, but none is available on this "
                             f"machine (torch {torch.__version__}); use --device cpu")
        if dev.index is not None and dev.index >= n:
            raise ValueError(f"device {device!r} does not exist: this machine has {n} CUDA "
                             f"GPU(s), cuda:0..cuda:{n - 1}")
    elif dev.type != "cpu":
        raise ValueError(f"device {device!r} is not supported by the kit; use cpu, cuda or "
                         "cuda:<i>")
    return str(dev)


# ------------------------------------------------------------------------------------------------
# the notebooks' training runs, counted from the profile (what studies.* will train)
# ------------------------------------------------------------------------------------------------
def _freeze(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, default=str)


def run_plan(profile: Profile | str) -> dict:
    """The training runs the notebook sequence of ``profile`` trains: the jobs of every grid
    (:func:`brcd_lib.experiments.plan.all_jobs`, the lists the grids train), deduplicated as the
    run cache does (same settings = same run): ``{"teachers": [...], "students": [...]}``, each
    entry a dict (bits, objective, backbone, teacher seed, method, settings, seed, rotations)."""
    p = get_profile(profile) if isinstance(profile, str) else profile
    teachers, students = {}, {}

    def teacher(bits: int, model, seed: int | None) -> dict:
        t = {"bits": bits, "objective": model.objective, "backbone": model.backbone.name,
             "seed": p.teacher_seed if seed is None else seed}
        teachers[_freeze(t)] = t
        return t

    for bits in p.bits:  # 02 teachers (and the main grid's)
        teacher(bits, p.teacher, None)
    for jobs in plan.all_jobs(p).values():
        for job in jobs:
            kw = job.kwargs
            model = kw.get("model") or p.student
            t_model = kw.get("teacher_model") or p.teacher
            t = teacher(kw["bits"], t_model, kw.get("teacher_seed"))
            settings = plan.distill_kwargs(p, kw["method"], kw.get("distill_kwargs"))
            s = {"bits": kw["bits"], "method": kw["method"], "seed": kw["seed"],
                 "settings": settings, "objective": model.objective,
                 "backbone": model.backbone.name, "teacher": _freeze(t),
                 "teacher_backbone": t_model.backbone.name,
                 "rotations": get_distiller(kw["method"], **settings).rotations}
            students[_freeze({k: v for k, v in s.items() if k != "rotations"})] = s
    return {"teachers": list(teachers.values()), "students": list(students.values())}


# ------------------------------------------------------------------------------------------------
# preflight of a profile
# ------------------------------------------------------------------------------------------------
@dataclass
class Preflight:
    """What :func:`check` found: ``problems`` (each says what is wrong and the fix; empty = ready),
    ``notes`` and the ``estimate`` of the run (counts always; hours when measured)."""

    profile: str
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    estimate: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems

    def __str__(self) -> str:
        lines = [f"preflight of profile {self.profile}: "
                 + ("ready" if self.ok else f"{len(self.problems)} problem(s)")]
        lines += [f"  PROBLEM: {p}" for p in self.problems]
        lines += [f"  note: {n}" for n in self.notes]
        e = self.estimate
        if e:
            lines.append(f"  runs: {e['teacher_runs']} teacher(s), {e['student_runs']} student(s)")
            if e.get("forward_passes"):
                per = ", ".join(f"{k} {v:,}" for k, v in e["forward_passes"].items())
                lines.append(f"  backbone forward passes at {e['image_size']} px (upper bound, no "
                             f"early stopping): {per}")
                if e.get("forward_passes_per_run") not in (None, e["forward_passes"]):
                    per = ", ".join(f"{k} {v:,}" for k, v in e["forward_passes_per_run"].items())
                    lines.append(f"  (each run pushing its own views through both backbones "
                                 f"would be: {per})")
            if e.get("head_steps"):
                h = e["head_steps"]
                lines.append(f"  head steps: teachers {h['teacher']:,}, students {h['student']:,}"
                             " (upper bound)")
            if e.get("online_banks"):
                b = e["online_banks"]
                lines.append(f"  online banks: {b['bytes_per_epoch'] / 2**20:,.0f} MiB per epoch "
                             f"(in memory; {b['disk_bytes_with_workers'] / 2**20:,.0f} MiB on disk "
                             "at a time when worker processes train the students)")
            if e.get("disk_bytes") is not None:
                lines.append(f"  disk: about {e['disk_bytes'] / 2**30:.1f} GiB of caches "
                             f"(features, view banks, checkpoints; upper bound)")
            if e.get("hours") is not None:
                lines.append(f"  time: about {e['hours']:.1f} h on {e['device']} (measured "
                             f"throughput {', '.join(f'{k} {v:.0f} img/s' for k, v in e['throughput'].items())}; "
                             "upper bound, early stopping shortens it)")
        return "\n".join(lines)


def _check_data(p: Profile, split_dir: str):
    """(splits or None, problem or None): the profile's dataset, without downloading."""

    d = p.data
    protocol = dict(d.protocol)
    if "download" in dataset_parameters(d.name):
        protocol["download"] = False  # a check never downloads
    try:
        return get_dataset(d.name, root=d.root, seed=d.split_seed, split_dir=split_dir,
                           **protocol), None
    except (FileNotFoundError, ValueError, OSError) as exc:
        return None, f"dataset {d.name}: {exc}"


def _weights_cached(name: str) -> bool | None:
    """Whether torchvision's pretrained weights of backbone ``name`` are in the torch hub cache
    (None: not a torchvision model)."""
    import torchvision

    try:
        weights = torchvision.models.get_model_weights(name)
    except (ValueError, KeyError):
        return None
    url = weights.IMAGENET1K_V1.url if hasattr(weights, "IMAGENET1K_V1") else None
    if url is None:
        return None
    return os.path.exists(os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(url)))


def _throughput(name: str, image_size: int, device: str, *, batch: int = 8,
                repeats: int = 2) -> float:
    """Measured images per second of backbone ``name`` (random weights) on ``device``."""

    net = create_backbone(name, pretrained=False).to(device).eval()
    x = torch.randn(batch, 3, image_size, image_size, device=device)
    with torch.inference_mode():
        net(x)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(repeats):
            net(x)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
    return batch * repeats / (time.perf_counter() - t0)


def _out_dim(name: str) -> int:

    with torch.device("meta"):
        return int(create_backbone(name, pretrained=False).out_dim)


def check(profile: Profile | str = "paper", *, cache_dir: str | None = None,
          results: str | None = None, measure: bool = True, device: str | None = None) -> Preflight:
    """Check that ``profile`` can run here before its first notebook: a GPU when the profile
    needs one, the dataset (never downloaded by the check), pretrained weights, writable cache
    and results folders with enough free disk; and estimate the run (number of training runs,
    backbone forward passes, cache bytes and -- with ``measure`` -- hours from the throughput of
    each backbone measured on ``device``). Returns a :class:`Preflight`; ``print`` it."""
    p = get_profile(profile) if isinstance(profile, str) else profile
    out = Preflight(profile=p.name)
    try:
        device = check_device(device) or ("cuda" if torch.cuda.is_available()
                                          and not p.runs_on_cpu else "cpu")
    except ValueError as exc:
        out.problems.append(str(exc))
        device = "cpu"
    if not p.runs_on_cpu and not device.startswith("cuda"):
        out.problems.append(f"profile {p.name} needs a CUDA GPU (ViT-B/16 at {p.data.image_size} "
                            f"px); none is available here (torch {torch.__version__}). Run it on a "
                            "GPU machine, or rehearse it on the CPU with profile paper_rehearsal")
    cache = cache_dir or str(cache_root())
    folders = {}
    for what, path in (("cache folder", cache), ("results folder", results or str(results_root()))):
        try:
            folders[what] = ensure_writable_dir(path, what=what)
        except StorageError as exc:
            out.problems.append(str(exc))
    splits, problem = _check_data(p, os.path.join(cache, "splits"))
    if problem:
        out.problems.append(problem)
    plan = run_plan(p)
    backbones = list(dict.fromkeys([p.teacher.backbone.name, p.student.backbone.name,
                                    *[r["backbone"] for r in plan["teachers"] + plan["students"]]]))
    for role, cfg in (("teacher", p.teacher.backbone), ("student", p.student.backbone)):
        if cfg.pretrained and _weights_cached(cfg.name) is False:
            out.notes.append(f"{role} backbone {cfg.name}: ImageNet weights are not in "
                             f"{os.path.join(torch.hub.get_dir(), 'checkpoints')}; the first run "
                             "downloads them (needs internet) or pass weights_path")
    est: dict[str, Any] = {"teacher_runs": len(plan["teachers"]),
                           "student_runs": len(plan["students"]), "image_size": p.data.image_size}
    if splits is not None:
        est.update(_workload(p, plan, splits, backbones))
        if len(p.seeds) > 1:  # the same grid with the first seed alone
            one = dataclasses.replace(p, seeds=p.seeds[:1], focus_seeds=None, aux_seeds=None,
                                      generality_seeds=None)
            w = _workload(one, run_plan(one), splits, backbones)
            est["per_seed"] = {"seeds": 1, "forward_passes": w["forward_passes"],
                               "forward_passes_per_run": w["forward_passes_per_run"],
                               "head_steps": w["head_steps"]}
        if measure:
            try:
                est["throughput"] = {b: _throughput(b, p.data.image_size, device)
                                     for b in est["forward_passes"]}
                est["hours"] = sum(n / est["throughput"][b]
                                   for b, n in est["forward_passes"].items()) / 3600
                est["device"] = device
            except (RuntimeError, ValueError) as exc:
                out.notes.append(f"throughput not measured ({exc})")
        for what, folder in folders.items():
            free = shutil.disk_usage(folder).free
            if what == "cache folder" and free < est["disk_bytes"]:
                out.problems.append(f"cache folder {folder} has {free / 2**30:.1f} GiB free; the "
                                    f"run needs about {est['disk_bytes'] / 2**30:.1f} GiB: free "
                                    "space or point BRCD_CACHE elsewhere")
    else:
        out.notes.append("no forward-pass, time or disk estimate without the data")
    out.estimate = est
    return out


def _workload(p: Profile, plan: dict, splits, backbones: list[str]) -> dict:
    """Backbone forward passes (upper bound: every epoch runs) and cache bytes of ``plan``."""
    n = {s: len(getattr(splits, s)) for s in ("train", "val", "query", "database")}
    clean = sum(n.values())
    passes = {b: 0 for b in dict.fromkeys(backbones)}
    disk = 0
    dims = {b: _out_dim(b) for b in passes}
    for b in passes:  # clean features of the four sets, once per backbone
        passes[b] += clean
        disk += clean * dims[b] * 4
    banks = set()  # (backbone, views, rotation): one cached bank each (same key = same file)
    teacher_bb = p.teacher.backbone.name
    if p.teacher_train.feature_views > 0:
        banks.add((teacher_bb, p.teacher_train.feature_views, 0))
    if p.student_train.feature_views > 0:
        v = p.student_train.feature_views
        for s in plan["students"]:  # the student's bank and the teacher's (SSKD: per rotation)
            for r in range(max(1, s["rotations"])):
                banks |= {(s["backbone"], v, r), (s.get("teacher_backbone", teacher_bb), v, r)}
    for b, v, _ in banks:
        passes[b] += v * n["train"]
        disk += v * n["train"] * dims[b] * 4
    online = _online_workload(p, plan, n["train"], dims)
    for b, k in online["forward_passes"].items():
        passes[b] += k
    configs = {p.teacher.backbone.name: p.teacher.backbone, p.student.backbone.name: p.student.backbone}
    for pair in _pair_models(p):  # the backbone pairs' other backbones
        for role in ("teacher", "student"):
            configs.setdefault(pair[role], pair[f"{role}_model"].backbone)
    for b, cfg in configs.items():
        if cfg.ssl_epochs and b in passes:  # SimCLR stand-in pretraining (CPU profiles)
            pool = n["database"] if cfg.ssl_pool == "database" else n["train"]
            passes[b] += cfg.ssl_epochs * pool * 2
    # checkpoints: a run folder holds its head in last.pt (with Adam's two moments and the best
    # head per paradigm) and in the selected-head files: at most 8 copies of the head's floats
    for role, runs in (("teacher", plan["teachers"]), ("student", plan["students"])):
        model = getattr(p, role)
        for r in runs:
            disk += 8 * 4 * _head_parameters(model, r["backbone"], r["bits"], dims[r["backbone"]]
                                             if r["backbone"] in dims else None)
    disk += online["disk_bytes"]
    per_run = dict(passes)
    for b, k in online["forward_passes"].items():
        per_run[b] += online["forward_passes_per_run"][b] - k
    return {"forward_passes": passes, "disk_bytes": disk, "sizes": n,
            "forward_passes_per_run": per_run, "augmented_views": online["augmented_views"],
            "augmented_views_per_run": online["augmented_views_per_run"],
            "head_steps": online["head_steps"], "online_banks": online["banks"]}


def _steps(n: int, batch_size: int) -> int:
    """Steps of an epoch of ``n`` items (the last partial batch dropped when one is full)."""
    return max(n // batch_size, 1 if n else 0)


def _online_workload(p: Profile, plan: dict, n_train: int, dims: dict[str, int]) -> dict:
    """The online pipeline's share of the workload (``feature_views = 0``): forward passes per
    backbone as the runs go (``forward_passes``) and as each run alone would push its views
    through both backbones (``forward_passes_per_run``: 2 views + the rotated copies of view 1
    per image and epoch), augmented views, head steps (every run, upper bound: no early
    stopping) and the online banks' bytes.

    With ``Profile.train_together`` (and frozen backbones) the runs of each phase -- teachers,
    then students -- share their views: per augmentation seed (``Experiment.bank_seed``: the
    split seed, or each run's seed), epoch and backbone the views are augmented once and each
    backbone computes 2 views + the rotated copies the most rotated run needs (copy 0 is view
    1); the teachers' phase is counted apart from the students' (its banks are not kept)."""
    t_cfg, s_cfg = p.teacher_train, p.student_train
    shared = p.train_together and p.teacher.freeze_backbone and p.student.freeze_backbone
    zero = {b: 0 for b in dims}
    out = {"forward_passes": dict(zero), "forward_passes_per_run": dict(zero),
           "augmented_views": 0, "augmented_views_per_run": 0,
           "head_steps": {"teacher": 0, "student": 0}, "disk_bytes": 0, "banks": {}}
    out["head_steps"]["teacher"] = sum(t_cfg.epochs * _steps(n_train, t_cfg.batch_size)
                                       for _ in plan["teachers"])
    out["head_steps"]["student"] = sum(s_cfg.epochs * _steps(n_train, s_cfg.batch_size)
                                       for _ in plan["students"])

    def aug_seed(train, seed):
        return p.data.split_seed if train.bank_seed == "split" else seed

    teacher_bb = p.teacher.backbone.name
    phases = []  # (phase, epochs, {aug seed: {backbone: rotations}})
    if t_cfg.feature_views == 0:
        groups: dict = {}
        for t in plan["teachers"]:
            out["forward_passes_per_run"][t["backbone"]] += t_cfg.epochs * n_train * 2
            out["augmented_views_per_run"] += t_cfg.epochs * n_train * 2
            groups.setdefault(aug_seed(t_cfg, t["seed"]), {})[t["backbone"]] = 1
        phases.append(("teachers", t_cfg.epochs, groups))
    if s_cfg.feature_views == 0:
        groups = {}
        for s in plan["students"]:
            k = s_cfg.epochs * n_train * (2 + s["rotations"])
            t_bb = s.get("teacher_backbone", teacher_bb)
            out["forward_passes_per_run"][s["backbone"]] += k
            out["forward_passes_per_run"][t_bb] += k
            out["augmented_views_per_run"] += s_cfg.epochs * n_train * 2
            users = groups.setdefault(aug_seed(s_cfg, s["seed"]), {})
            for b in (s["backbone"], t_bb):
                users[b] = max(users.get(b, 1), s["rotations"])
        phases.append(("students", s_cfg.epochs, groups))
    if not shared:
        out["forward_passes"] = dict(out["forward_passes_per_run"])
        out["augmented_views"] = out["augmented_views_per_run"]
        return out
    item = 2 if not p.runs_on_cpu and "bf16" in (p.teacher.backbone_precision,
                                                  p.student.backbone_precision) else 4
    per_epoch = 0
    parts = {b: {"teachers": 0, "students": 0, "rotated": 0} for b in dims}
    for phase, epochs, groups in phases:
        phase_bytes = 0
        for users in groups.values():
            out["augmented_views"] += epochs * n_train * 2
            for b, rotations in users.items():
                copies = 2 + max(rotations - 1, 0)
                out["forward_passes"][b] += epochs * n_train * copies
                parts[b][phase] += epochs * n_train * 2
                parts[b]["rotated"] += epochs * n_train * (copies - 2)
                phase_bytes += copies * n_train * dims[b] * item
        per_epoch = max(per_epoch, phase_bytes)
    out["banks"]["passes_by_part"] = parts
    out["banks"].update({"bytes_per_epoch": per_epoch, "memory_bytes": per_epoch,
                         "disk_bytes_with_workers": (AHEAD + 2) * per_epoch,
                         "item_bytes": item})
    if (p.workers or 0) != 1:  # students in worker processes: a few epochs on disk at a time
        out["disk_bytes"] = (AHEAD + 2) * per_epoch
    return out


def _head_parameters(model, backbone: str, bits: int, out_dim: int | None) -> int:
    out_dim = out_dim if out_dim is not None else _out_dim(backbone)
    head = create_head(plan.head_of(model, backbone),
                       in_dim=out_dim, code_length=bits, hidden=model.head_hidden)
    return sum(t.numel() for t in head.parameters())


# ------------------------------------------------------------------------------------------------
# readiness: what a profile needs and this machine lacks (no data read, nothing downloaded)
# ------------------------------------------------------------------------------------------------
ENV_DOWNLOAD = "BRCD_DOWNLOAD"


def download_allowed() -> bool:
    """Whether ``$BRCD_DOWNLOAD`` asks for downloads (``1``, ``true``, ``yes``)."""
    return os.environ.get(ENV_DOWNLOAD, "").strip().lower() in ("1", "true", "yes", "on")


@dataclass
class Readiness:
    """``problems``: what is missing (each a sentence with its fix); ``needs``: what the profile
    needs, met or not (for the message); ``notes``: what will happen on first use."""

    profile: str
    problems: list[str] = field(default_factory=list)
    needs: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def message(self) -> str:
        lines = [f"profile {self.profile!r} cannot run on this machine:"]
        lines += [f"  - {p}" for p in self.problems]
        if self.needs:
            lines.append(f"profile {self.profile!r} needs: " + "; ".join(self.needs) + ".")
        lines += self.notes
        return "\n".join(lines)


class ProfileNotReady(RuntimeError):
    """A profile's requirements are not met. In a notebook it shows as its message alone (no
    traceback: IPython calls ``_render_traceback_``)."""

    def __init__(self, readiness: Readiness):
        super().__init__(readiness.message())
        self.readiness = readiness

    def _render_traceback_(self) -> list[str]:
        return [f"{type(self).__name__}: {self}"]


def _gpu_problem() -> str | None:
    if torch.cuda.is_available():
        return None
    build = (f"this torch {torch.__version__} is built without CUDA" if torch.version.cuda is None
             else f"torch {torch.__version__} (CUDA {torch.version.cuda}) sees no GPU")
    return (f"a CUDA GPU: {build}. Run the profile on a GPU machine, or run a CPU profile "
            "(smoke, digits, fashion)")


def _weights_note(profile: Profile) -> str | None:
    """Where the ImageNet weights of the profile's pretrained backbones come from."""
    missing = [m.backbone.name for m in (profile.teacher, profile.student)
               if m.backbone.pretrained and m.backbone.weights_path is None
               and _weights_cached(m.backbone.name) is False]
    if not missing:
        return None
    return ("ImageNet weights not in the torch hub cache yet, downloaded on first use (needs "
            "internet; offline, download them elsewhere and set BackboneConfig.weights_path): "
            + ", ".join(missing))


def check_profile(profile: Profile | str, *, download: bool | None = None) -> Readiness:
    """What ``profile`` needs and what this machine lacks (GPU, dataset files). Reads no data and
    downloads nothing; ``download`` (default :func:`download_allowed`) turns a missing
    downloadable dataset from a problem into a note."""

    profile = profile if isinstance(profile, Profile) else get_profile(profile)
    download = download_allowed() if download is None else download
    ready = Readiness(profile=profile.name)
    if not profile.runs_on_cpu:
        ready.needs.append("a CUDA GPU")
        problem = _gpu_problem()
        if problem:
            ready.problems.append(problem)
    pretrained = [m.backbone.name for m in (profile.teacher, profile.student) if m.backbone.pretrained]
    if pretrained:
        ready.needs.append("ImageNet weights of " + ", ".join(pretrained))
    data = profile.data
    ready.needs.append(f"dataset {data.name}")
    try:
        locate_files(data.name, root=data.root, **data.protocol)
    except DatasetNotAvailableError as err:
        takes_download = "download" in dataset_parameters(data.name)
        if download and takes_download:
            ready.notes.append(f"{data.name} is not on disk; {ENV_DOWNLOAD} is set, so it will be "
                               "downloaded on first use")
        else:
            fix = (f" To let the kit download it instead, set {ENV_DOWNLOAD}=1 (or run "
                   "`python -m brcd_lib.reproduce --download`)." if takes_download else "")
            reason = str(err).removesuffix(", or pass download=True")
            ready.problems.append(f"dataset {data.name}: {reason}.{fix}")
    note = _weights_note(profile) if ready.ok else None
    if note:
        ready.notes.append(note)
    return ready


def require_profile(profile: Profile | str, *, download: bool | None = None) -> Readiness:
    """:func:`check_profile`, raising :class:`ProfileNotReady` when something is missing."""
    ready = check_profile(profile, download=download)
    if not ready.ok:
        raise ProfileNotReady(ready)
    return ready
