"""One profile's experiments: data, pretrained backbones, features, teachers, students, shallow
baselines.

``Experiment`` is what the notebooks and the reproduction job call. Every training run goes
through the run store (:mod:`brcd_lib.experiments.runstore`), keyed by a hash of everything that
determines it (profile data, split hash, model, training and distillation configs, code length,
seed, the backbone's weights, and for students the teacher's run): a finished run is loaded, an
interrupted one resumes from its last checkpoint.
"""
from __future__ import annotations

import contextlib
import logging
import os
import time

import numpy as np
import torch

from ..config import DistillConfig, ModelConfig, TrainConfig, config_hash, to_dict
from ..data import dataset_parameters, get_dataset
from ..data.transforms import get_transforms
from ..distill import get_distiller
from ..io import ensure_writable_dir, json_safe, remove_stale_temp_files
from ..metrics import map_at_k
from ..models import build_hashing_network, get_objective
from ..models.pretrain import load_committed_file, ssl_pretrain
from ..models.shallow import get_shallow_hasher
from ..paths import cache_root, weights_root
from ..provenance import provenance
from ..training import engine
from ..training.executors import ExecutorSpec, resolve_executor
from ..training.features import FeatureStore, as_stored, module_fingerprint, online_views_id
from ..training.parallel import resolve_workers, torch_threads
from ..training.sources import BankPairSource, ImagePairSource, OnlineBankPairSource, PairSource
from ..training.views import make_views
from .preflight import check_device, download_allowed
from . import plan
from .profiles import Profile, get_profile
from .runstore import PARADIGMS, RunStore, TrainedRun, TrainOutcome

log = logging.getLogger(__name__)

__all__ = ["Experiment", "TrainedRun", "ShallowNotAvailable", "DegenerateTeacher", "SSL_INIT_SEED"]


class ShallowNotAvailable(RuntimeError):
    """LSH / ITQ need the raw pixels in memory (array-backed datasets only)."""


SSL_INIT_SEED = 0
"""Seed of a backbone's initial weights before SimCLR pretraining; every run then loads the
pretrained weights (the run's own seed initialises its head)."""


class DegenerateTeacher(ValueError):
    """The teacher's codes collapsed to a few distinct values (e.g. an objective that collapsed
    on these backbones); methods that cluster the codes cannot run. Studies record it."""


# cache folders the kit writes (a sweep of leftovers stays out of downloaded datasets)
CACHE_FOLDERS = ("splits", "pretrain", "features", "clusters", "runs", "reproduce")
_SWEPT: set[str] = set()


def _sweep_once(cache_dir: str) -> None:
    """Remove the temporary files killed writers left in the cache (once per process)."""
    if cache_dir in _SWEPT:
        return
    _SWEPT.add(cache_dir)
    removed = remove_stale_temp_files([os.path.join(cache_dir, f) for f in CACHE_FOLDERS])
    if removed:
        log.info("removed %d temporary file(s) left by killed runs in %s", len(removed), cache_dir)


def as_count(value, what: str, *, minimum: int = 0) -> int:
    """``value`` as a plain ``int`` (NumPy integers accepted); anything else -- a bool, a float,
    a string, a value below ``minimum`` -- raises ``ValueError`` naming ``what``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) \
            or value < minimum:
        raise ValueError(f"{what} must be an integer >= {minimum}, got "
                         f"{type(value).__name__} {value!r}")
    return int(value)


def code_health(codes: torch.Tensor) -> dict:
    """Distinct codes and nearly constant bits (one value on >= 95% of the items) of +-1 codes."""
    codes = torch.as_tensor(codes).float()
    balance = codes.mean(dim=0).abs()
    return {"n": int(codes.shape[0]), "bits": int(codes.shape[1]),
            "distinct_codes": int(len(torch.unique(codes, dim=0))),
            "constant_bits": int((balance >= 0.9).sum()),
            "mean_abs_bit_balance": round(float(balance.mean()), 4)}


def collapse_warning(health: dict, *, what: str) -> str | None:
    """A warning when at least half the bits are nearly constant: the codes collapsed (e.g. a
    learning rate far too high) and their mAP says little about the method."""
    if 2 * health["constant_bits"] < health["bits"]:
        return None
    return (f"{what}: collapsed codes: {health['constant_bits']} of {health['bits']} bits take "
            f"one value on >= 95% of the {health['n']} database items and only "
            f"{health['distinct_codes']} distinct codes remain; training probably diverged or "
            "stalled (check the learning rate and the number of epochs)")


class _HoldStudentCollapses(logging.Filter):
    """Drops the per-run collapse warnings of student runs (a grid says them once, in
    :func:`collapse_summary`); teacher collapses and every other message pass."""

    def filter(self, record: logging.LogRecord) -> bool:
        return getattr(record, "collapse_role", None) != "student"


@contextlib.contextmanager
def held_student_collapses():
    """Within the block, student runs that collapse do not log one warning each; the caller
    reports them from the rows' ``warnings`` (:func:`collapse_summary`)."""
    hold = _HoldStudentCollapses()
    log.addFilter(hold)
    try:
        yield
    finally:
        log.removeFilter(hold)


def collapse_summary(rows: list[dict], *, grid: str, profile: Profile,
                     n_train: int | None = None, limit: int = 6) -> str | None:
    """One line for a grid's student runs whose codes collapsed (their rows' ``warnings``), or
    None when none did: how many, which (the first ``limit``), and either why that is expected
    (``Profile.collapse_expected``: a profile whose budgets only check the code path) or what to
    check."""
    runs, total = [], set()
    for r in rows:
        key = (r.get("variant") or r.get("method"), r.get("bits"), r.get("seed"),
               r.get("teacher_seed"))
        total.add(key)
        if "collapsed codes" in str(r.get("warnings") or "") and key not in runs:
            runs.append(key)
    if not runs:
        return None
    teachers = len({t for *_, t in total}) > 1  # a grid over teacher seeds names them
    names = [f"{v} {b} bits seed {s}" + (f" teacher seed {t}" if teachers else "")
             for v, b, s, t in runs[:limit]]
    more = f" and {len(runs) - limit} more" if len(runs) > limit else ""
    head = (f"{grid}: {len(runs)} of {len(total)} student runs have collapsed codes (at least "
            f"half their bits take one value on >= 95% of the database items): "
            f"{', '.join(names)}{more}; their rows carry the warning (column `warnings`).")
    if profile.collapse_expected:
        data = f" on {n_train} training images" if n_train else ""
        return (f"{head} Expected on the {profile.name} profile: its students train for "
                f"{profile.student_train.epochs} epochs{data}, enough to check that every "
                "notebook runs, not to learn codes; its numbers are not results.")
    return f"{head} Training probably diverged or stalled: check the learning rate and epochs."


class Experiment:
    """Experiments of one profile on one device, sharing splits, backbones and feature caches."""

    def __init__(self, profile: Profile | str = "digits", *, cache_dir: str | None = None,
                 device: str | None = None, progress: bool = True, resume: bool = True,
                 workers: int | None = None, download: bool | None = None,
                 executor: str | ExecutorSpec | None = None, online: str = "shared",
                 bank_batch: int | None = None):
        self.profile = profile if isinstance(profile, Profile) else get_profile(profile)
        # CPU cores for grids (worker processes) and serial phases (threads): training.parallel
        self.workers = resolve_workers(workers, profile_workers=self.profile.workers)
        # where a grid's runs train (local processes, one per GPU, Dask): training.executors
        self.executor = resolve_executor(executor)
        self.cache_dir = str(ensure_writable_dir(cache_dir or cache_root(), what="cache folder"))
        self.device = check_device(device) or (
            "cuda" if torch.cuda.is_available() and not self.profile.runs_on_cpu else "cpu")
        _sweep_once(self.cache_dir)
        self.progress, self.resume = progress, resume
        # a dataset missing on disk is downloaded only when asked for ($BRCD_DOWNLOAD or download=)
        self.download = download_allowed() if download is None else bool(download)
        # the serial phases draw the augmented views with one loader worker per core
        self.store = FeatureStore(cache_dir=self.cache_dir,
                                  num_workers=self.workers if self.workers > 1 else 0)
        self.runs = RunStore(root=os.path.join(self.cache_dir, "runs", self.profile.name))
        # the online pipeline (feature_views=0, frozen backbones): "shared" reads each epoch's
        # views from banks built once per backbone (FeatureStore.online_bank), "per_run" pushes
        # them through the backbones in every run; both give the same features. bank_batch: the
        # banks' forward batch (None: the run's batch size, which keeps the CPU's bits)
        if online not in ("shared", "per_run"):
            raise ValueError(f"online must be 'shared' or 'per_run', got {online!r}")
        self.online, self.bank_batch = online, bank_batch
        self._splits = None
        self._backbones: dict[str, torch.nn.Module] = {}
        self._teachers: dict[str, TrainedRun] = {}

    # ---------------------------------------------------------------- data
    @property
    def splits(self):
        if self._splits is None:
            d = self.profile.data
            protocol = dict(d.protocol)
            if "download" in dataset_parameters(d.name):
                protocol.setdefault("download", self.download)
            self._splits = get_dataset(d.name, root=d.root, seed=d.split_seed,
                                       split_dir=os.path.join(self.cache_dir, "splits"), **protocol)
        return self._splits

    def transform(self, *, train: bool):
        d = self.profile.data
        options = {} if train else dict(d.test_transform_options)
        return get_transforms(d.transform, size=d.image_size, train=train, **options)

    def _transform_desc(self, train: bool) -> str:
        d = self.profile.data
        return f"{d.transform}-{d.image_size}-{'train' if train else 'test'}"

    def labels(self, set_name: str) -> np.ndarray:
        return getattr(self.splits, set_name).labels

    # ---------------------------------------------------------------- models
    def build_network(self, model: ModelConfig, bits: int, *, role: str, seed: int = 0):
        """A hashing network whose backbone is pretrained (SimCLR stand-in or real weights)."""
        stand_in = model.backbone.ssl_epochs > 0 or model.backbone.committed_weights
        if stand_in:
            pretrained = self.pretrained_backbone(model, role=role)
        net = self._new_network(model, bits, role=role, init_seed=seed)
        if stand_in:
            net.backbone.load_state_dict(pretrained.state_dict())
        return net.to(self.device)

    def _new_network(self, model: ModelConfig, bits: int, *, role: str, init_seed: int):
        """A freshly initialised hashing network of ``model`` (``torch.manual_seed(init_seed)``)."""
        bb = model.backbone
        on_gpu = str(self.device).startswith("cuda")  # bf16 / channels-last are GPU speed options
        torch.manual_seed(init_seed)
        return build_hashing_network(role=role, backbone=bb.name, code_length=bits,
                                     pretrained=bb.pretrained, weights_path=bb.weights_path,
                                     freeze_backbone=model.freeze_backbone, head=model.head,
                                     head_hidden=model.head_hidden,
                                     backbone_precision=model.backbone_precision if on_gpu
                                     else "fp32",
                                     channels_last=model.channels_last and on_gpu, **bb.kwargs)

    def pretrained_backbone(self, model: ModelConfig, *, role: str,
                            weights_dirs: tuple[str, ...] | None = None):
        """The SimCLR-pretrained backbone of ``model`` (``ssl_epochs > 0``): the committed
        weights in ``weights_dirs`` (default ``brcd_lib/weights``) when their cache key and
        SHA-256 match, else the pretraining cache, else pretrained now (resumable); with
        ``committed_weights`` the named committed file (another profile's pretraining). Its
        ``ssl_pretrain_info`` says which (``cache_hit``: ``"committed"``, True or False)."""
        bb = model.backbone
        if bb.ssl_pool not in ("database", "train"):
            raise ValueError(f"ssl_pool must be 'database' or 'train', got {bb.ssl_pool!r}")
        dirs = (str(weights_root()),) if weights_dirs is None else tuple(weights_dirs)
        if bb.committed_weights:  # transferred from another profile's pretraining
            key = config_hash(bb, dirs)
            if key not in self._backbones:
                net = self._new_network(model, 16, role=role, init_seed=SSL_INIT_SEED).backbone
                load_committed_file(net, bb.committed_weights, dirs)
                self._backbones[key] = net.to(self.device).eval()
            return self._backbones[key]
        key = config_hash(bb, self.profile.data, self.splits.split_hash, dirs)
        if key not in self._backbones:
            images = getattr(self.splits, bb.ssl_pool).images  # unlabelled images
            # the pretrained backbone depends on the backbone, the data and the split only: it
            # starts from a fixed initialisation, not from the seed of the first run a process
            # builds (which made it depend on the order of a grid's runs)
            init = self._new_network(model, 16, role=role, init_seed=SSL_INIT_SEED).backbone
            with torch_threads(self._serial_threads()):
                self._backbones[key] = ssl_pretrain(
                    init, images=images,
                    image_size=self.profile.data.image_size, epochs=bb.ssl_epochs,
                    batch_size=bb.ssl_batch_size, lr=bb.ssl_lr, temperature=bb.ssl_temperature,
                    augment=dict(bb.ssl_augment) or None, seed=self.profile.data.split_seed,
                    lr_schedule=bb.ssl_lr_schedule, precision=bb.ssl_precision,
                    device=self.device, cache_dir=os.path.join(self.cache_dir, "pretrain"),
                    progress=self.progress, weights_dirs=dirs)
        return self._backbones[key]

    def _serial_threads(self) -> int:
        """Intra-op threads of the large serial computations (pretraining, backbone features):
        the profile's workers on the CPU, the current setting elsewhere."""
        return self.workers if self.device == "cpu" else torch.get_num_threads()

    # ---------------------------------------------------------------- features and codes
    def features(self, net, set_name: str) -> torch.Tensor:
        ds = getattr(self.splits, set_name).with_transform(self.transform(train=False))
        with torch_threads(self._serial_threads()):
            return self.store.clean(net, ds, set_name=set_name, split_hash=self.splits.split_hash,
                                    transform_desc=self._transform_desc(False), device=self.device,
                                    progress=self.progress)

    def codes(self, net, set_name: str) -> torch.Tensor:
        """+-1 codes of a set under the test transform (cached backbone features + head)."""
        return engine.codes_from_features(net, self.features(net, set_name).to(self.device)).cpu()

    def view_bank(self, net, n_views: int, *, rotation: int = 0, seed: int | None = None) -> torch.Tensor:
        """(n_views, n_train, d) backbone features of augmented views of the training images;
        the augmentations are drawn with ``seed`` (default: the split seed)."""
        ds = self.splits.train.with_transform(self.transform(train=True))
        seed = self.profile.data.split_seed if seed is None else seed
        with torch_threads(self._serial_threads()):
            return self.store.views(net, ds, n_views=n_views, seed=seed,
                                    split_hash=self.splits.split_hash,
                                    transform_desc=self._transform_desc(True), rotation=rotation,
                                    device=self.device, progress=self.progress)

    def view_codes(self, net, n_views: int) -> torch.Tensor:
        """(n_views, n_train, L) +-1 codes of the cached augmented views of the training images."""
        bank = self.view_bank(net, n_views).to(self.device)
        return torch.stack([engine.codes_from_features(net, b) for b in bank]).cpu()

    def bank_seed(self, train: TrainConfig, run_seed: int) -> int:
        """The augmentation seed of a run's view bank (``TrainConfig.bank_seed``)."""
        if train.bank_seed == "split":
            return self.profile.data.split_seed
        if train.bank_seed == "run":
            return int(run_seed)
        raise ValueError(f"TrainConfig.bank_seed must be 'split' or 'run', got {train.bank_seed!r}")

    def source(self, net, train: TrainConfig, teacher=None, rotations: int = 0, *,
               frozen: bool = True, seed: int = 0) -> PairSource:
        """The training pairs of a run with seed ``seed``: cached view banks
        (``train.feature_views > 0`` and a frozen backbone) or fresh augmentations, drawn from
        (augmentation seed, epoch, image) (:mod:`brcd_lib.training.views`) and read from shared
        online banks (frozen backbones, ``online="shared"``) or pushed through the backbones by
        the run itself; with ``rotations`` the rotated copies of view 1 a distiller such as SSKD
        reads."""
        if train.feature_views > 0 and frozen:
            bank_seed = self.bank_seed(train, seed)

            def bank(model, rotation=0):
                return self.view_bank(model, train.feature_views, rotation=rotation, seed=bank_seed)

            sb = bank(net).to(self.device)
            tb = None if teacher is None else bank(teacher).to(self.device)
            s_rot = t_rot = None
            if rotations:
                s_rot = torch.stack([bank(net, r) for r in range(rotations)]).to(self.device)
                t_rot = torch.stack([bank(teacher, r) for r in range(rotations)]).to(self.device)
            return BankPairSource(student_bank=sb, teacher_bank=tb, student_rot=s_rot,
                                  teacher_rot=t_rot)
        views = self.train_views(train)
        aug_seed = self.bank_seed(train, seed)
        if frozen and self.online == "shared":
            return self._online_source(net, teacher, rotations, train, views, aug_seed)
        return ImagePairSource(views=views, aug_seed=aug_seed,
                               student_features=lambda x: as_stored(net, net.features(x)),
                               teacher_features=None if teacher is None else
                               (lambda x: as_stored(teacher, teacher.features(x))),
                               rotations=rotations, device=self.device)

    def train_views(self, train: TrainConfig):
        """How the online pipeline draws the training images' views (``train.augment``)."""
        return make_views(self.splits.train, self.transform(train=True), augment=train.augment,
                          device=self.device, num_workers=train.num_workers,
                          pin_memory=train.pin_memory)

    def _online_source(self, net, teacher, rotations: int, train: TrainConfig, views,
                       aug_seed: int) -> OnlineBankPairSource:
        users = [(net, rotations)] + ([] if teacher is None else [(teacher, rotations)])
        options = dict(seed=aug_seed, split_hash=self.splits.split_hash,
                       transform_desc=self._transform_desc(True),
                       batch=self.bank_batch or train.batch_size)
        views_id = online_views_id(kind=views.kind, **options)
        for user in users:  # runs trained together build every backbone in one pass
            self.store.share(*user, views_id)

        def fetch(epoch: int) -> dict:
            banks = self.store.online_bank(users, views, epoch=epoch, device=self.device,
                                           progress=self.progress, **options)
            s, t = banks[0], (banks[1] if teacher is not None else None)
            return {"student": s["views"], "teacher": None if t is None else t["views"],
                    "student_rot": s["rot"] if rotations else None,
                    "teacher_rot": t["rot"] if rotations and t is not None else None}

        return OnlineBankPairSource(n=len(views), fetch=fetch)

    def evaluate(self, query_codes, db_codes, *, queries: str = "query") -> float:
        """mAP@K of ``query_codes`` (of the set ``queries``: "query" or "val") against
        ``db_codes`` of the database."""
        return float(map_at_k(query_codes, db_codes, self.labels(queries), self.labels("database"),
                              self.splits.top_k))

    # ---------------------------------------------------------------- runs
    def teacher(self, bits: int, *, model: ModelConfig | None = None,
                train: TrainConfig | None = None, seed: int | None = None) -> TrainedRun:
        """Train (or load) the hashing teacher for ``bits`` (``seed``: default the profile's
        ``teacher_seed``)."""
        bits = as_count(bits, "bits (code length)", minimum=1)
        model = model or self.profile.teacher
        train = train or self.profile.teacher_train
        seed = self.profile.teacher_seed if seed is None else as_count(seed, "teacher seed")
        memo = config_hash(model, train, bits, seed)  # this Experiment's data and split are fixed
        if memo in self._teachers:
            return self._teachers[memo]
        net = self.build_network(model, bits, role="teacher", seed=seed)
        # the backbone's weights are part of the key: a changed architecture or pretraining is a miss
        key = config_hash("teacher", self.profile.data, self.splits.split_hash, model, train, bits,
                          seed, module_fingerprint(net.backbone))

        def fit(run_dir: str) -> TrainOutcome:
            t0 = time.time()

            def validate():
                q = self.codes(net, "val")
                return {"symmetric": self.evaluate(q, self.codes(net, "database"), queries="val")}

            objective = get_objective(model.objective, **model.objective_kwargs)
            loop = engine.fit(name=f"teacher {bits} bits", net=net, objective=objective,
                              source=self.source(net, train, frozen=model.freeze_backbone,
                                                 seed=seed),
                              train_cfg=train, seed=seed, validate=validate,
                              checkpoint_path=os.path.join(run_dir, "last.pt"),
                              resume=self.resume, progress=self.progress)
            head = loop.best_state["symmetric"]["head"]
            engine.load_head_state(net, head)
            db_codes = self.codes(net, "database")
            value = self.evaluate(self.codes(net, "query"), db_codes)
            record = self._record(role="teacher", key=key, bits=bits, seed=seed, model=model,
                                  train=train, distill=None, loop=loop,
                                  metrics={"symmetric": value, "asymmetric": value},
                                  wall_s=time.time() - t0,
                                  health=self._health(db_codes, f"teacher {bits} bits",
                                                      role="teacher"))
            return TrainOutcome(heads={"symmetric": head},
                                best_epoch={"symmetric": loop.best_epoch["symmetric"]},
                                record=record)

        run = self.runs.load_or_train(role="teacher", key=key, net=net, train=fit,
                                      model_config=to_dict(model), bits=bits)
        self._teachers[memo] = run
        return run

    def has_teacher(self, bits: int, *, model: ModelConfig | None = None,
                    seed: int | None = None) -> bool:
        """Whether this Experiment already holds the teacher of ``bits`` (trained or loaded)."""
        model = model or self.profile.teacher
        seed = self.profile.teacher_seed if seed is None else seed
        return config_hash(model, self.profile.teacher_train, bits, seed) in self._teachers

    def distill_config(self, method: str, distill_kwargs: dict | None = None,
                       weight: float = 1.0) -> DistillConfig:
        """The distiller settings of a student run: the paper defaults, the profile's overrides
        of ``method`` (and BRCD's profile settings), then ``distill_kwargs``."""
        return DistillConfig(method=method, kwargs=plan.distill_kwargs(self.profile, method,
                                                                       distill_kwargs),
                             weight=weight)

    def student(self, bits: int, *, method: str = "none", seed: int = 0,
                distill_kwargs: dict | None = None, model: ModelConfig | None = None,
                teacher_model: ModelConfig | None = None, train: TrainConfig | None = None,
                distill_weight: float = 1.0, label: str | None = None,
                teacher_seed: int | None = None) -> TrainedRun:
        """Train (or load) a student distilled with ``method`` from the teacher of ``bits``
        (``teacher_model``, ``teacher_seed``: default the profile's)."""
        bits = as_count(bits, "bits (code length)", minimum=1)
        seed = as_count(seed, "seed")
        model = self.profile.student_model(method, model)
        train = train or self.profile.student_train
        distill = self.distill_config(method, distill_kwargs, distill_weight)
        teacher = self.teacher(bits, model=teacher_model, seed=teacher_seed)
        net = self.build_network(model, bits, role="student", seed=seed)
        key = config_hash("student", self.profile.data, self.splits.split_hash, model, train, bits,
                          seed, distill, teacher.record["key"], module_fingerprint(net.backbone))
        if teacher.net.code_length != net.code_length:
            raise ValueError(f"teacher ({teacher.net.code_length} bits) and student "
                             f"({net.code_length} bits) must have the same code length")

        def fit(run_dir: str) -> TrainOutcome:
            t0 = time.time()
            objective = get_objective(model.objective, **model.objective_kwargs)
            distiller = get_distiller(method, **distill.kwargs).to(self.device)
            teacher_net = teacher.net
            train_codes = self.codes(teacher_net, "train")
            n_distinct = len(torch.unique(train_codes, dim=0))
            try:
                # class labels reach a distiller only when it asks for them (an upstream option)
                labels = (torch.as_tensor(self.labels("train")) if distiller.reads_labels
                          else None)
                distiller.prepare(engine.make_context(
                    teacher_train_codes=train_codes.to(self.device), seed=seed,
                    cache_dir=os.path.join(self.cache_dir, "clusters"),
                    cache_key=teacher.record["key"], train_labels=labels))
            except ValueError as err:
                if n_distinct >= max(2, len(train_codes) // 10):
                    raise
                raise DegenerateTeacher(
                    f"{method}: the teacher's codes of the {len(train_codes)} training images take "
                    f"only {n_distinct} distinct values, too few to distil from ({err})") from err
            teacher_db = self.codes(teacher_net, "database")

            def validate():
                q = self.codes(net, "val")
                return {"symmetric": self.evaluate(q, self.codes(net, "database"), queries="val"),
                        "asymmetric": self.evaluate(q, teacher_db, queries="val")}

            name = f"{label or method} {bits} bits seed {seed}"
            loop = engine.fit(name=name, net=net, objective=objective,
                              source=self.source(net, train, teacher_net, distiller.rotations,
                                                 frozen=model.freeze_backbone, seed=seed),
                              train_cfg=train, seed=seed, validate=validate, teacher=teacher_net,
                              distiller=distiller, distill_weight=distill.weight,
                              checkpoint_path=os.path.join(run_dir, "last.pt"), resume=self.resume,
                              progress=self.progress)
            heads = {p: loop.best_state[p]["head"] for p in PARADIGMS}
            best = {p: engine.restore(net, loop.best_state[p]) for p in PARADIGMS}
            q_sym = self.codes(best["symmetric"], "query")
            db_sym = self.codes(best["symmetric"], "database")
            metrics = {"symmetric": self.evaluate(q_sym, db_sym),
                       "asymmetric": self.evaluate(self.codes(best["asymmetric"], "query"),
                                                   teacher_db)}
            extra = {}
            if hasattr(distiller, "kept_bit_fraction"):
                extra["kept_bit_fraction"] = float(distiller.kept_bit_fraction)
            record = self._record(role="student", key=key, bits=bits, seed=seed, model=model,
                                  train=train, distill=distill, loop=loop, metrics=metrics,
                                  wall_s=time.time() - t0, extra=extra,
                                  teacher_key=teacher.record["key"],
                                  teacher_seed=teacher.record["seed"],
                                  health=self._health(db_sym, name, role="student"))
            return TrainOutcome(heads=heads, best_epoch=dict(loop.best_epoch), record=record)

        return self.runs.load_or_train(role="student", key=key, net=net, train=fit,
                                       model_config=to_dict(model), bits=bits)

    def prepare_inputs(self, bits: int, *, method: str = "none", seed: int = 0,
                       model: ModelConfig | None = None, teacher_model: ModelConfig | None = None,
                       train: TrainConfig | None = None, distill_kwargs: dict | None = None,
                       teacher_seed: int | None = None, **_run_options) -> None:
        """Build (or load) what a student run with these settings reads besides its own
        training: the teacher, the teacher's codes of the training set and the database, the
        student backbone's features of the evaluation sets and the view banks (with the rotated
        copies when the method needs them). Grids call it before they send runs to worker
        processes, so that two workers never build the same cache
        (:func:`brcd_lib.experiments.studies.prefetch_students`)."""
        model = self.profile.student_model(method, model)
        train = train or self.profile.student_train
        teacher = self.teacher(bits, model=teacher_model, seed=teacher_seed)
        net = self.build_network(model, bits, role="student", seed=seed)
        for set_name in ("train", "database"):
            self.codes(teacher.net, set_name)
        for set_name in ("val", "query", "database"):
            self.features(net, set_name)
        rotations = get_distiller(method, **self.distill_config(method, distill_kwargs).kwargs).rotations
        self.source(net, train, teacher.net, rotations, frozen=model.freeze_backbone, seed=seed)

    def pixels(self, set_name: str) -> np.ndarray:
        """Raw pixels of a set as float vectors in [0, 1] (array-backed datasets only)."""
        s = getattr(self.splits, set_name)
        if not hasattr(s, "images"):
            raise ShallowNotAvailable(f"shallow hashers run on in-memory pixel arrays; "
                                      f"{self.profile.data.name} is read from image files")
        return s.images.reshape(len(s), -1).float().numpy() / 255.0

    def shallow_codes(self, bits: int, name: str, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """(query codes, database codes) of a shallow hasher (LSH, ITQ) fit on the training
        images' raw pixels."""
        hasher = get_shallow_hasher(name, code_length=bits, seed=seed)
        hasher.fit(self.pixels("train"))
        return hasher.encode(self.pixels("query")), hasher.encode(self.pixels("database"))

    def shallow(self, bits: int, name: str, *, seed: int = 0) -> dict[str, float]:
        """A shallow hasher on raw pixels, same protocol (symmetric paradigm only)."""
        return {"symmetric": self.evaluate(*self.shallow_codes(bits, name, seed=seed))}

    # ---------------------------------------------------------------- records
    def _health(self, db_codes: torch.Tensor, what: str, *, role: str) -> dict:
        """code_health of a run's database codes; a collapse is logged as a warning (a grid
        holds its students' and says them once: :func:`held_student_collapses`)."""
        health = code_health(db_codes)
        warning = collapse_warning(health, what=what)
        if warning:
            log.warning("%s", warning, extra={"collapse_role": role})
        return {"code_health": health, "warnings": [warning] if warning else []}

    def _record(self, *, role, key, bits, seed, model, train, distill, loop, metrics, wall_s,
                extra=None, teacher_key=None, teacher_seed=None, health=None) -> dict:
        return json_safe({
            **(health or {"warnings": []}),
            "role": role, "key": key, "profile": self.profile.name, "dataset": self.profile.data.name,
            "bits": bits, "seed": seed, "split_hash": self.splits.split_hash,
            "top_k": self.splits.top_k, "model": to_dict(model), "train": to_dict(train),
            "distill": None if distill is None else to_dict(distill), "teacher_key": teacher_key,
            "teacher_seed": seed if role == "teacher" else teacher_seed,
            "metrics": metrics, "val_best": loop.best, "best_epoch": loop.best_epoch,
            "epochs_run": loop.epochs_run, "stopped_early": loop.stopped_early,
            "history": loop.history, "wall_s": wall_s, "extra": extra or {},
            **provenance(device=self.device),
        })
