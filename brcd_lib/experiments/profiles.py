"""Named profiles: everything a reproduction at one scale needs (data, models, budgets, grids).

* ``smoke``   a slice of digits, tiny budgets, one seed: every notebook end to end in minutes.
* ``digits``  the embedded default (scikit-learn digits), full grids, 3 seeds, CPU.
* ``fashion`` Fashion-MNIST with the CIFAR-10 protocol shape, the CPU-scale headline.
* ``mosaic``  multi-label: 2x2 Fashion-MNIST mosaics with the MS-COCO protocol shape (mAP@5000).
* ``paper``   the paper's configurations (CIFAR-10 etc., ViT-B/16 teacher, EfficientNet-B0
              student, pretrained weights, released epochs/lr/patience) for a GPU box with data.

Unknown names raise ``ValueError`` listing the valid ones.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from ..config import BackboneConfig, DataConfig, ModelConfig, TrainConfig
from ..data import list_datasets
from ..distill import list_methods
from ..registry import Registry


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    data: DataConfig
    teacher: ModelConfig
    student: ModelConfig
    teacher_train: TrainConfig
    student_train: TrainConfig
    bits: tuple[int, ...] = (16, 32, 64)
    # Seeds. A student seed sets the head's initialisation, the batch order and view pairing,
    # the k-means initialisation and (with TrainConfig.bank_seed="run") the augmentation bank;
    # the data split, the pretrained backbones and the teacher (teacher_seed) stay fixed.
    seeds: tuple[int, ...] = (0, 1, 2)  # main grid, every method
    focus_methods: tuple[str, ...] = ("none", "kd", "brcd")  # main-grid methods run with focus_seeds
    focus_seeds: tuple[int, ...] | None = None  # None = seeds
    aux_seeds: tuple[int, ...] | None = None  # ablation and sensitivity grids (None = seeds)
    generality_seeds: tuple[int, ...] | None = None  # generality grid (None = seeds)
    teacher_seed: int = 0
    # the BRCD / KD / no-KD comparison at sensitivity_bits repeated under each of these teacher
    # seeds, with the student seeds ``seeds`` (empty = not run)
    teacher_seeds: tuple[int, ...] = ()
    ablation_bits: tuple[int, ...] | None = None  # None = (sensitivity_bits,)
    methods: tuple[str, ...] | None = None  # main-grid methods; None = every registered distiller
    brcd: dict = field(default_factory=lambda: {"n_clusters": 10, "margin": 0.5, "alpha": 0.8})
    # per-method overrides of the paper defaults (CPU concessions are listed here, nowhere else)
    method_kwargs: dict = field(default_factory=dict)
    # analysis / sensitivity grids
    elbow_ks: tuple[int, ...] = (2, 4, 6, 8, 10, 12, 15, 20)
    sensitivity_bits: int = 32
    alphas: tuple[float, ...] = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
    margins: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 0.9)
    cluster_counts: tuple[int, ...] = (5, 10, 15, 20)
    # generality
    objectives: tuple[str, ...] = ("cibhash", "bihalf", "greedyhash")
    generality_methods: tuple[str, ...] = ("none", "kd", "rkd", "brcd")
    # backbone pairs (notebook 06): other students under the teacher, other teachers over the
    # student; names (the profile's backbone settings, the backbone's default size) or
    # BackboneConfigs; trained with pair_methods
    student_backbones: tuple[str | BackboneConfig, ...] = ()
    teacher_backbones: tuple[str | BackboneConfig, ...] = ()
    pair_methods: tuple[str, ...] = ("none", "kd", "brcd")
    # capacity ladder (notebook 06): student backbones of increasing strength (weakest first)
    # under the profile's one teacher, each with the profile student's head, trained with
    # ladder_methods and ladder_seeds (None = the focus seeds); empty = not run
    ladder_backbones: tuple[BackboneConfig, ...] = ()
    ladder_methods: tuple[str, ...] = ("none", "kd", "brcd")
    ladder_seeds: tuple[int, ...] | None = None
    # the head of the student trained without a teacher (method "none"): "same" (the distilled
    # students' head, so no KD differs from them only by the teacher) or "release" (the released
    # code's linear head, model/CIBHash.py: the undistilled EfficientNet student gets Linear(1000, L)
    # while the distilled ones get the MLP); docs/departures.md has its measured effect
    undistilled_head: str = "same"
    runs_on_cpu: bool = True
    # CPU cores to use: grids train runs in this many worker processes, the serial phases
    # (pretraining, backbone features) use this many threads and loader workers; BRCD_WORKERS
    # overrides (brcd_lib.training.parallel). None = every core of the machine; 1 = one process.
    workers: int | None = None
    # batch sizes notebook 09 measures latency and throughput at (the paper rehearsal measures
    # batch 1 only: a batch of 64 ViT-B/16 images costs minutes on a CPU core)
    efficiency_batch_sizes: tuple[int, ...] = (1, 64)
    # True for a profile whose budgets only check the code path (smoke): student codes that
    # collapse are expected there, and a grid says so once instead of warning run by run
    collapse_expected: bool = False

    # train every run of the notebooks' grids together before the notebooks run
    # (brcd_lib.experiments.together.train_plan: teachers, then students, each phase in step, so
    # that each epoch's fresh views pass through every frozen backbone once); the notebooks then
    # load the runs from the run cache
    train_together: bool = False

    def __post_init__(self) -> None:
        if self.undistilled_head not in UNDISTILLED_HEADS:
            raise ValueError(f"Profile.undistilled_head must be one of {', '.join(UNDISTILLED_HEADS)}, "
                             f"got {self.undistilled_head!r}")

    def student_model(self, method: str, model: ModelConfig | None = None) -> ModelConfig:
        """The student ``model`` (default: the profile's) a run of ``method`` builds: with
        ``undistilled_head="release"`` the run without a teacher gets the released linear head."""
        model = model or self.student
        if method == "none" and self.undistilled_head == "release":
            return dataclasses.replace(model, head="linear", head_hidden=None)
        return model

    def method_seeds(self, method: str) -> tuple[int, ...]:
        """The main-grid seeds of ``method`` (``focus_seeds`` for the focus methods)."""
        if method in self.focus_methods and self.focus_seeds is not None:
            return tuple(self.focus_seeds)
        return tuple(self.seeds)

    def grid_methods(self) -> tuple[str, ...]:
        """The main grid's methods: ``methods``, or every registered distiller in table order
        (:func:`brcd_lib.distill.list_methods`), so a newly registered method joins every grid."""
        return tuple(self.methods) if self.methods is not None else tuple(list_methods())


UNDISTILLED_HEADS = ("same", "release")

PROFILES: Registry = Registry("profile")


def register_profile(name: str, *, rehearsal: bool = False):
    """Decorator registering a zero-argument factory that returns the :class:`Profile`.
    ``rehearsal=True``: a profile that rehearses another one's code path on generated data (not
    listed by :func:`list_profiles` unless asked; :func:`get_profile` and the runner accept it)."""
    return PROFILES.register(name, rehearsal=rehearsal)


def list_profiles(*, include_rehearsals: bool = False) -> list[str]:
    """Profile names in registration order (the rehearsal profiles too when asked)."""
    return [e.name for e in PROFILES.entries()
            if include_rehearsals or not e.meta.get("rehearsal")]


def get_profile(name: str, **overrides) -> Profile:
    if not isinstance(name, str):  # e.g. a papermill parameter injected with the wrong type
        raise TypeError(f"profile must be a profile name (str), one of {', '.join(list_profiles())}; "
                        f"got {type(name).__name__} {name!r}")
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; valid profiles: {', '.join(list_profiles())}")
    profile = PROFILES.build(name)
    return dataclasses.replace(profile, **overrides) if overrides else profile


# CPU stand-ins for ImageNet-pretrained backbones: a 1.2M-parameter ResNet teacher and a 6k-parameter
# CNN student, SimCLR-pretrained on every unlabelled image the protocol allows (the database: never
# a validation or query image). The weights are committed (brcd_lib/weights, made by
# `python -m brcd_lib.pretrain`); a recipe that differs from theirs pretrains again. Recipe and
# measurements: benchmarks/explore_standin.py, docs/models.md.
CPU_TEACHER = BackboneConfig(name="resnet_teacher", kwargs={"pool_grid": 2}, ssl_epochs=200,
                             ssl_batch_size=256, ssl_lr=1e-3, ssl_temperature=0.5,
                             ssl_augment={"hflip_p": 0.0}, ssl_lr_schedule="cosine",
                             ssl_precision="bf16")
CPU_STUDENT = dataclasses.replace(CPU_TEACHER, name="small_cnn_s", kwargs={"width": 8})


def release_student_head(student: ModelConfig, *, teacher_features: int) -> ModelConfig:
    """The paper's trainable structure on the CPU stand-in (issue #24, method.md section 2):
    only heads train, the teacher's is linear, and the student's is the release's MLP
    ``Linear(d_s, h) - ReLU - Linear(h, L)`` with its hidden layer as wide as the teacher's
    features (``h = teacher_features``, the release: 1000 on EfficientNet's 1000 logits, the
    ViT teacher's 768 features). So the student head holds more trainable parameters than the
    teacher's ``Linear(d_t, L)`` at every code length and no layer is narrower than L; the
    teacher - student gap comes from what the frozen backbones know
    (tests/test_standin.py checks the rule on every CPU profile)."""
    return dataclasses.replace(student, head="mlp", head_hidden=int(teacher_features))


# Students train until validation stops improving (the released validation every 10 epochs and
# patience of 5 validations in which neither paradigm improves) under a cap that does not bind:
# CPU concession / departure: the release caps students at 400 epochs; converged CPU students
# peak between epochs 30 and 500 (the undistilled students of results/benchmarks/structure.md,
# step 3), so 1,000 leaves the cap out of every decision (the report gives the share of runs
# whose best epoch came before 80 % of it). Each run seed also draws its own bank of augmented
# views (bank_seed="run").
STUDENT_TRAIN = TrainConfig(epochs=1000, batch_size=64, lr=1e-3, eval_every=10, patience=5,
                            feature_views=12, bank_seed="run")


@register_profile("digits")
def _digits() -> Profile:
    return Profile(
        name="digits",
        description="scikit-learn digits (embedded), 16 px, SimCLR-pretrained CPU backbones",
        data=DataConfig(name="digits", image_size=16, transform="small"),
        # teacher: linear head on the 2x2-pooled map (1,024 features), the pooling with the higher
        # validation mAP (benchmarks/explore_structure.py, step 1)
        teacher=ModelConfig(backbone=CPU_TEACHER),
        # student: small_cnn_s at width 4 (4-8-16 channels, 16-d features), not the other CPU
        # profiles' width 8: by the premise rule of benchmarks/explore_structure.py (step 3,
        # written before the step ran) the width-8 student fails the premise on validation at
        # every code length (teacher - student 0.7 / 1.2 / 1.6 seed SDs at 16 / 32 / 64 bits)
        # and the next narrower width meets it (8.1 / 8.2 / 11.3 SDs, above LSH at every length;
        # results/benchmarks/structure.md). The width-8 digits results stay in git (8d08ba9,
        # every claim "premise not met") and in docs/models.md.
        student=release_student_head(
            ModelConfig(backbone=dataclasses.replace(CPU_STUDENT, kwargs={"width": 4})),
            teacher_features=1024),
        # the released teacher learning rate (5e-4), trained until validation stops improving:
        # up to 600 epochs, 5 validations without improvement (a head on cached features)
        teacher_train=TrainConfig(epochs=600, batch_size=64, lr=5e-4, eval_every=10, patience=5,
                                  feature_views=12),
        student_train=STUDENT_TRAIN,
        # CPU concessions: CRCD's relation term costs B x B x negatives x dim per step (0.15 s on
        # this CPU at 500 negatives); 128 negatives keep the digits grid inside its time budget.
        # PACKD writes its bank with momentum 0 for the release's 782 steps = 10 of its epochs
        # (79 steps each); digits has 15 steps per epoch, so 10 epochs are 150 steps.
        method_kwargs={"crcd": {"n_negatives": 128}, "packd": {"warmup_iters": 150}},
        # main table: 5 seeds for BRCD, KD and no KD, 3 for the other baselines; ablations and
        # sensitivity (32 bits): 5 seeds; BRCD / KD / no KD under 3 teachers (3 seeds each)
        focus_seeds=(0, 1, 2, 3, 4), aux_seeds=(0, 1, 2, 3, 4), teacher_seeds=(0, 1, 2),
    )


@register_profile("smoke")
def _smoke() -> Profile:
    base = _digits()
    return dataclasses.replace(
        base, name="smoke", description="a slice of digits, tiny budgets, one seed",
        data=dataclasses.replace(base.data, protocol={"subset": 60, "n_query": 10, "n_val": 10,
                                                           "n_train_per_class": 30, "top_k": 50}),
        teacher=ModelConfig(backbone=dataclasses.replace(CPU_TEACHER, ssl_epochs=40)),
        student=dataclasses.replace(base.student, backbone=dataclasses.replace(CPU_STUDENT,
                                                                               ssl_epochs=15)),
        teacher_train=dataclasses.replace(base.teacher_train, epochs=40, eval_every=10, feature_views=4),
        student_train=dataclasses.replace(base.student_train, epochs=10, eval_every=5, feature_views=4),
        bits=(16,), seeds=(0,), focus_seeds=None, aux_seeds=None, teacher_seeds=(0, 1),
        elbow_ks=(2, 4, 6), alphas=(0.0, 0.8, 1.0), margins=(0.0, 0.5), cluster_counts=(4, 10),
        # one process: a smoke run trains for well under a second, less than a spawned worker
        # takes to import torch and load the experiment (a few seconds per grid on the 2-core
        # machine; wall times in docs/performance.md); the test suite still runs the smoke
        # notebooks with BRCD_WORKERS=2 (tests/conftest.py), the path digits and fashion take
        workers=1,
        collapse_expected=True,
    )


@register_profile("fashion")
def _fashion() -> Profile:
    base = _digits()
    student_bb = dataclasses.replace(CPU_STUDENT, ssl_epochs=10, ssl_augment={"hflip_p": 0.5})
    return dataclasses.replace(
        base, name="fashion",
        description="Fashion-MNIST, CIFAR-10 protocol shape (500/class train, 5k/5k val/test, 60k db)",
        data=DataConfig(name="fashion_mnist", image_size=28, transform="small"),
        # CPU concessions of this profile (measured on the 2-core machine, 1 thread):
        # * SimCLR: 10 epochs of the 60,000 database images (committed weights; 50 CPU minutes),
        #   with horizontal flips (clothes are mirror-symmetric)
        # teacher: linear head on the 2x2-pooled map (1,024 features), the pooling with the
        # higher validation mAP (benchmarks/explore_structure.py, step 1)
        teacher=ModelConfig(backbone=dataclasses.replace(CPU_TEACHER, ssl_epochs=10,
                                                         ssl_augment={"hflip_p": 0.5})),
        student=release_student_head(ModelConfig(backbone=student_bb), teacher_features=1024),
        # PACKD: the released 782 warm-up steps are 10 epochs of this profile's 78 steps too
        method_kwargs={"crcd": {"n_negatives": 128}},
        teacher_train=dataclasses.replace(base.teacher_train, feature_views=8),
        student_train=dataclasses.replace(base.student_train, feature_views=8),
        seeds=(0, 1, 2),
        alphas=(0.0, 0.5, 0.8, 1.0), margins=(0.0, 0.5, 0.9), cluster_counts=(5, 10, 20),
        # the capacity ladder (notebook 06): the student CNN at widths 4, 8 (the profile's
        # student) and 16, each SimCLR-pretrained with the profile's recipe (committed weights),
        # under the one teacher; no KD, KD, BRCD and the strongest other baseline on validation
        # (benchmarks/explore_structure.py, step 5: CRD, 0.4213 averaged over both paradigms and
        # 3 seeds at 32 bits, ahead of CRCD 0.4196 and PKT 0.4139; results/benchmarks/structure.md),
        # 5 seeds
        ladder_backbones=tuple(dataclasses.replace(student_bb, kwargs={"width": w})
                               for w in (4, 8, 16)),
        ladder_methods=("none", "kd", "brcd", "crd"),
    )


@register_profile("mosaic")
def _mosaic() -> Profile:
    base = _fashion()

    def transferred(model: ModelConfig, file: str, **kwargs) -> ModelConfig:
        # the fashion profile's committed SimCLR weights (pretrained on the 60,000 Fashion-MNIST
        # training images the database mosaics are made of; no validation or query item), loaded
        # as the paper loads ImageNet weights for MS-COCO
        bb = model.backbone
        return dataclasses.replace(model, backbone=BackboneConfig(
            name=bb.name, kwargs={**bb.kwargs, **kwargs}, committed_weights=file))

    return dataclasses.replace(
        base, name="mosaic",
        description="multi-label: 2x2 Fashion-MNIST mosaics, MS-COCO protocol shape (relevance = "
                    "a shared class, mAP@5000), the fashion profile's pretrained backbones",
        # 20,000 database mosaics of Fashion-MNIST training items, 5,000 training mosaics drawn
        # from them, 1,000 validation and 2,000 query mosaics of test items (brcd_lib/data/mosaic.py);
        # composed at the dataset's 28 px (14 px items), resized to 56 px by the transform
        data=DataConfig(name="fashion_mosaic", image_size=56, transform="small",
                        protocol={"n_database": 20_000, "n_train": 5_000, "n_val": 1_000,
                                  "n_query": 2_000, "tiles": 2, "empty_p": 0.35, "top_k": 5_000}),
        # the teacher pools its last map globally (256 features): a mosaic's relevance does not
        # depend on where its items sit, and the globally pooled teacher scored 0.7762 on
        # validation at 32 bits against 0.6799 with the 2x2 map (results/benchmarks/structure.md,
        # step 1); same committed weights (the pooling has no parameters)
        teacher=transferred(base.teacher, "fashion_teacher_resnet_teacher", pool_grid=1),
        student=release_student_head(
            transferred(base.student, "fashion_student_small_cnn_s_w8"), teacher_features=256),
        # 3 seeds everywhere (the 90-minute budget); no repeated-teacher grid, no backbone pairs
        focus_seeds=None, aux_seeds=(0, 1, 2), teacher_seeds=(),
        student_backbones=(), teacher_backbones=(), ladder_backbones=(),
    )


@register_profile("paper")
def _paper() -> Profile:
    return Profile(
        name="paper",
        description="the paper's configuration: CIFAR-10, ViT-B/16 teacher, EfficientNet-B0 student, "
                    "ImageNet-pretrained, 224 px (needs a GPU and the data)",
        # the released CIFAR-10 code resizes test images straight to 224 (no 256 + centre crop)
        data=DataConfig(name="cifar10", image_size=224, transform="paper",
                        test_transform_options={"center_crop": False}),
        # GPU path: frozen backbones under bf16 autocast with channels-last images (both only on
        # CUDA; the heads train in float32), 8 loader workers with pinned memory; fresh
        # augmentations every step as released (feature_views=0; a bank would cache them)
        teacher=ModelConfig(backbone=BackboneConfig(name="vit_b_16", pretrained=True),
                            backbone_precision="bf16", channels_last=True),
        student=ModelConfig(backbone=BackboneConfig(name="efficientnet_b0", pretrained=True),
                            backbone_precision="bf16", channels_last=True),
        teacher_train=TrainConfig(epochs=200, batch_size=64, lr=5e-4, eval_every=5, patience=3,
                                  num_workers=8, pin_memory=True, stop_when="exceeds"),
        student_train=TrainConfig(epochs=400, batch_size=64, lr=1e-3, eval_every=10, patience=5,
                                  num_workers=8, pin_memory=True, stop_when="exceeds"),
        # the release's seed first, then four more: five student seeds for the claims table's
        # paired intervals (change `seeds` for fewer or others); the teacher keeps the release's
        seeds=(8888, 8889, 8890, 8891, 8892), teacher_seed=8888,
        brcd={"n_clusters": 10, "margin": 0.5, "alpha": 0.8, "n_init": 30},  # released k-means restarts
        student_backbones=("efficientnet_b0", "mobilenet_v2", "resnet18"),
        teacher_backbones=("vit_b_16", "vit_b_32", "vit_l_16"),
        runs_on_cpu=False,
        # the online views' features are computed once per frozen backbone and epoch for every
        # run of the grid (bank_seed="split": every seed sees the same fresh views; "run" draws
        # them per seed); the grid's runs train together first (train_plan)
        train_together=True,
    )


# ------------------------------------------------------------------------------------------------
# paper rehearsals: the paper profile's code path, every notebook, on generated data on a CPU
# ------------------------------------------------------------------------------------------------
REHEARSAL_DATA = {
    # what tests/fakes.py writes for each rehearsal (the profile's protocol must fit it)
    "paper_rehearsal": {"dataset": "cifar10", "n_per_class": 2, "n_test": 6},
    "paper_rehearsal_lists": {"dataset": "nuswide", "n_train": 18, "n_test": 4, "n_database": 10},
}


def _rehearsal(name: str, data: DataConfig, description: str) -> Profile:
    """The ``paper`` profile with only what a CPU rehearsal must change: tiny generated data
    (``data``; found through ``$BRCD_DATA``), random weights (``pretrained=False``), schedules of
    2 epochs validated every epoch, cached banks of 2 augmented views (the paper trains on fresh
    augmentations; that path is rehearsed by ``tests/test_paper_configs.py`` and
    ``tests/test_online_banks.py``), the paper's first two seeds (two are enough for the claims
    table's paired intervals; the head runs multiply with the seeds), one code length
    (16 bits: ITQ needs at least 16 training images), K = 2 clusters, short sensitivity grids and
    latency at batch 1 (databases of at least 10 items: notebook 10's smallest K), and the
    teacher-size axis without ViT-L/16. Backbones, heads, objectives, methods, the other
    generality axes, lr, batch size, patience, the teacher's seed and margins stay the paper's."""
    paper = _paper()

    def model(m: ModelConfig) -> ModelConfig:
        return dataclasses.replace(m, backbone=dataclasses.replace(m.backbone, pretrained=False))

    def schedule(t: TrainConfig) -> TrainConfig:
        return dataclasses.replace(t, epochs=2, eval_every=1, feature_views=2)

    return dataclasses.replace(
        paper, name=name, description=description, data=data,
        teacher=model(paper.teacher), student=model(paper.student),
        teacher_train=schedule(paper.teacher_train), student_train=schedule(paper.student_train),
        bits=(16,), sensitivity_bits=16, brcd={**paper.brcd, "n_clusters": 2},
        seeds=paper.seeds[:2],
        elbow_ks=(2, 3), alphas=(0.0, 1.0), margins=(0.5,), cluster_counts=(2, 3),
        runs_on_cpu=True, workers=1, efficiency_batch_sizes=(1,),
        # the teacher-size axis without ViT-L/16 (300M parameters: minutes per image batch on a
        # CPU); ViT-B/32 rehearses the code path of a second teacher
        teacher_backbones=tuple(t for t in paper.teacher_backbones if t != "vit_l_16"),
    )


@register_profile("paper_rehearsal", rehearsal=True)
def _paper_rehearsal() -> Profile:
    return _rehearsal(
        "paper_rehearsal",
        DataConfig(name="cifar10", image_size=224, transform="paper",
                   test_transform_options={"center_crop": False},
                   protocol={"n_train_per_class": 2, "n_val": 2, "n_query": 4, "download": False}),
        "the paper profile's code path on generated CIFAR-10 files (20 training images), random "
        "weights, CPU: every notebook, minutes")


@register_profile("paper_rehearsal_lists", rehearsal=True)
def _paper_rehearsal_lists() -> Profile:
    return _rehearsal(
        "paper_rehearsal_lists",
        DataConfig(name="nuswide", image_size=224, transform="paper", protocol={"n_val": 2}),  # 16 train
        "the paper profile's code path on generated NUS-WIDE list files and JPEGs (multi-label), "
        "random weights, CPU: every notebook")


def paper_configurations(*, datasets: tuple[str, ...] = ("cifar10", "coco", "nuswide", "imagenet100"),
                         generality_dataset: str | None = None) -> list[tuple[str, str, str]]:
    """The paper's ``(dataset, teacher backbone, student backbone)`` configurations.

    Derived from the ``paper`` profile: every dataset of ``datasets`` with the profile's teacher
    (ViT-B/16) and each of its student backbones (EfficientNet-B0, the default, first; then
    MobileNetV2 and ResNet-18), followed by the generality study's other teachers (ViT-B/32,
    ViT-L/16), each once, with the default student on ``generality_dataset`` (``None`` = the
    profile's dataset, CIFAR-10). Unknown dataset names raise ``ValueError`` listing the valid ones.
    """
    paper = get_profile("paper")
    gen = generality_dataset if generality_dataset is not None else paper.data.name
    unknown = [d for d in (*datasets, gen) if d not in list_datasets()]
    if unknown:
        raise ValueError(f"unknown dataset(s) {', '.join(map(repr, unknown))}; valid names: "
                         f"{', '.join(list_datasets())}")
    teacher, student = paper.teacher.backbone.name, paper.student.backbone.name
    students = (student, *(s for s in paper.student_backbones if s != student))
    main = [(d, teacher, s) for d in datasets for s in students]
    return main + [(gen, t, student) for t in paper.teacher_backbones if t != teacher]
