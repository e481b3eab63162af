"""The config's schema: every section a dataclass with commented defaults (what a built-in profile or a YAML
file may set), the committee's judges, and the config written beside a run's outputs (`dump_config`).
Reading profiles and files: config.py; checking values: validate.py."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import yaml

from .errors import DataCleanerError

SCHEMES = ("dling", "cv")
FUSIONS = ("logits", "probs")
OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("cosine", "cosine_restarts", "constant")
TTA_MODES = ("deterministic", "augment")
DEVICES = ("auto", "cpu", "cuda", "mps")
ENGINES = ("auto", "torch", "onnxruntime")  # engines.py
EXECUTORS = ("local", "ray")

# Deterministic views, in the order they are taken: (zoom, centre x, centre y, hflip, vflip).
# zoom < 1 crops that fraction of the side; centres are in [-1, 1] image coordinates.
DETERMINISTIC_VIEWS = [
    ("identity", 1.0, 0.0, 0.0, False, False),
    ("hflip", 1.0, 0.0, 0.0, True, False),
    ("crop_center", 0.875, 0.0, 0.0, False, False),
    ("crop_center_hflip", 0.875, 0.0, 0.0, True, False),
    ("crop_top_left", 0.875, -0.125, -0.125, False, False),
    ("crop_bottom_right", 0.875, 0.125, 0.125, False, False),
    ("crop_top_right", 0.875, 0.125, -0.125, False, False),
    ("crop_bottom_left", 0.875, -0.125, 0.125, False, False),
    ("vflip", 1.0, 0.0, 0.0, False, True),
    ("hvflip", 1.0, 0.0, 0.0, True, True),
]


def deterministic_views(aug: "AugmentConfig") -> list[tuple]:
    """The deterministic TTA views that stay inside the training family: no flip the training never makes."""
    return [v for v in DETERMINISTIC_VIEWS if (aug.hflip > 0 or not v[4]) and (aug.vflip > 0 or not v[5])]


@dataclass
class MemberConfig:
    """One committee member: a timm architecture and its training recipe."""

    arch: str = "resnet18"  # timm model name
    name: str | None = None  # label in outputs and cache files; None = arch
    weight: float = 1.0  # fusion weight (members are averaged by weight)
    pretrained: bool = False  # timm hub weights (needs internet or a warm HF cache)
    pretrained_file: str | None = None  # local .safetensors/.pth with timm key names
    img_size: int | None = None  # None = the model's own input size (timm data config)
    mean: list[float] | None = None  # None = the model's own normalisation
    std: list[float] | None = None
    epochs: int = 10
    batch_size: int = 64
    optimizer: str = "adamw"  # sgd (with momentum) | adamw
    lr: float = 1e-3
    momentum: float = 0.9  # sgd only
    weight_decay: float = 0.05
    warmup_epochs: float = 1.0  # linear warmup from lr/100
    schedule: str = "cosine"  # cosine | cosine_restarts | constant
    restart_epochs: int = 0  # cycle length for cosine_restarts (0 = epochs); cycles start at epoch 0, the
    #                          first one after the warmup, and each full cycle ends with the learning rate near 0
    snapshots: int = 0  # S > 0: the weights at the end of the last S cycles judge as members of their own,
    #                     '<name>@c<cycle>' (snapshot ensembling; needs cosine_restarts and frozen: false)
    snapshot_weights: list[float] | None = None  # the S snapshots' shares of `weight`, oldest first; None = even
    label_smoothing: float = 0.0  # epsilon
    focal_gamma: float = 0.0  # 0 = plain cross-entropy
    flooding: float = 0.0  # b: train on |loss - b| + b; 0 = off
    drop_rate: float = 0.0  # dropout before the classifier
    drop_path_rate: float = 0.0  # stochastic depth
    amp: bool = True  # mixed precision on CUDA (bf16 where supported)
    frozen: bool = False  # keep the pretrained backbone frozen: its TTA features are computed once per
    #                       image and cached; each round trains only a logistic-regression head on them
    head_l2: float = 0.03  # frozen members: L2 penalty of the head on standardised features (README: benchmark)
    cpus: float = 2.0  # --executor ray: CPUs each of this member's jobs asks for (its torch threads);
    # a frozen member's heads fit on as many threads on either executor
    gpus: float = 0.0  # --executor ray: GPUs each of this member's jobs asks for (fractions share a GPU)

    @property
    def label(self) -> str:
        return self.name or self.arch

    @property
    def cycle_epochs(self) -> int:
        """Epochs per cosine_restarts cycle (restart_epochs; 0 means one cycle of `epochs`)."""
        return self.restart_epochs or self.epochs

    @property
    def cycles(self) -> int:
        """Learning-rate cycles in training: epochs / restart_epochs for cosine_restarts, else 1."""
        if self.schedule != "cosine_restarts" or not self.restart_epochs:
            return 1
        return max(1, self.epochs // self.restart_epochs)

    def snapshot_cycles(self) -> list[int]:
        """The cycles (1-based) whose end weights judge as snapshots: the last `snapshots` ones; [] when off."""
        return list(range(self.cycles - self.snapshots + 1, self.cycles + 1)) if self.snapshots else []


# What only decides how a member's trained weights judge, not how it trains: left out of training keys.
JUDGING_ONLY = ("snapshots", "snapshot_weights")


@dataclass(frozen=True)
class Judge:
    """One voice of the committee: a member's final weights (cycle None), or its weights at the end of
    learning-rate cycle `cycle` (a snapshot). Frozen and plain members have one judge each."""

    member: MemberConfig
    cycle: int | None = None

    @property
    def label(self) -> str:
        return self.member.label if self.cycle is None else f"{self.member.label}@c{self.cycle}"

    @property
    def weight(self) -> float:
        """Its fusion weight: the member's, split between its snapshots by snapshot_weights (evenly by default)."""
        m = self.member
        if self.cycle is None:
            return m.weight
        cycles = m.snapshot_cycles()
        shares = m.snapshot_weights or [1.0] * len(cycles)
        total = sum(shares)
        return m.weight * shares[cycles.index(self.cycle)] / total if total > 0 else 0.0


def judges(members: list[MemberConfig]) -> list[Judge]:
    """Every judge of a committee of `members`, in order: a member's snapshots take its place."""
    return [Judge(m, c) for m in members for c in (m.snapshot_cycles() or [None])]


def set_judge_weight(members: list[MemberConfig], label: str, weight: float) -> None:
    """Set a fusion weight by label: a member's (`name`; its snapshots keep their shares of it), or one
    snapshot's (`name@cN`: the member's weight becomes the sum of its snapshots' and their shares follow)."""
    for m in members:
        if m.label == label:
            m.weight = float(weight)
            return
    for j in judges(members):
        if j.label == label:
            m = j.member
            current = [Judge(m, c).weight for c in m.snapshot_cycles()]
            current[m.snapshot_cycles().index(j.cycle)] = float(weight)
            m.weight, m.snapshot_weights = float(sum(current)), current
            return
    raise DataCleanerError(f"no member named '{label}' in this run; members: {', '.join(j.label for j in judges(members))}")


@dataclass
class AugmentConfig:
    """Training augmentation (albumentations); TTA 'augment' views draw from the same family."""

    scale: list[float] = field(default_factory=lambda: [0.6, 1.0])  # random resized crop area
    ratio: list[float] = field(default_factory=lambda: [0.75, 1.333])  # crop aspect ratio
    hflip: float = 0.5  # probability of a horizontal flip
    vflip: float = 0.0  # probability of a vertical flip
    rotate: float = 10.0  # max rotation, degrees
    brightness: float = 0.2  # colour jitter strengths
    contrast: float = 0.2
    saturation: float = 0.2
    hue: float = 0.0


@dataclass
class TTAConfig:
    """How each image is expanded into views at judgement time."""

    mode: str = "deterministic"  # deterministic (identity, flips, fixed crops) | augment
    views: int = 4  # V


@dataclass
class CleanConfig:
    """Everything `datacleaner clean` needs."""

    scheme: str = "dling"  # dling: train on 1 part, judge the other K-1 | cv: train on K-1, judge 1
    folds: int = 5  # K
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | mps
    threads: int = 0  # torch CPU threads; 0 = all cores
    engine: str = "auto"  # frozen members' forward passes: auto (ONNX Runtime on the CPU, else torch) | torch | onnxruntime
    fusion: str = "logits"  # average logits (then softmax) or probabilities
    tau: float = 0.1  # a round flags an image if its label's fused probability < tau
    flag_rule: str = "fixed"  # fixed: the fused argmax differs from the label or p(label) < tau;
    #   class_adaptive: per-class thresholds t_c = mean p(c) over images labeled c (confident learning):
    #   flagged when some other class j has p(j) >= t_j;
    #   noise_rate: the n lowest label_quality, n = confident learning's estimate of the wrong labels
    calibrate: bool = False  # fit one temperature per member and round (NLL of the given labels) before fusion
    fit_weights: bool = False  # fit the members' fusion weights per round (NLL of the given labels)
    label_quality: str = "self_confidence"  # ranking score: self_confidence | normalized_margin
    passes: int = 1  # 2: retrain every round's committee without the images pass 1 sent to review, judge again
    min_flags: int | None = None  # T: review when flagged in >= T rounds; None = every round that judged it
    min_error_prob: float | None = None  # and only when error_prob (the estimated chance the label is wrong) is at least
    #   this: a shorter list asked for. None: at least 0.1, lengthened below it (never under 0.01) until the rows
    #   expect 80% of the dataset's expected wrong labels (scoring.review_cut; docs/method.md)
    cache_size: int | None = None  # side of the decoded-image cache; None = largest member size
    batch_size_predict: int | None = None  # views per forward pass at judgement; None = 64 on the CPU (fewer above 128 px), 1024 on a GPU
    shard_images: int = 4096  # images per prediction job (and per chunk held in memory)
    cache_memory_gb: float = 2.0  # decoded images up to this size (and half of memory_gb) are held in RAM; larger ones are read from disk in pieces
    memory_gb: float | None = None  # what one stage may hold in large arrays (heads' training features, scores); None = a quarter
    #                                  of this machine's memory. Above it a stage works in pieces from disk, and says so
    checks: str = "all"  # data-health checks: all | none | duplicates | properties | issue names, comma-separated
    compile: bool = False  # torch.compile members on CUDA (slower start, faster steps on long runs)
    executor: str = "local"  # local | ray
    ray_address: str | None = None  # existing Ray cluster (HOST:6379 or ray://HOST:10001); None = start one locally
    retries: int = 3  # --executor ray: times a failed or lost job is retried
    weights_dir: str | None = None  # folder of <arch>.safetensors / <arch>.<tag>.safetensors tried before timm's hub;
    #                                 None = $DATACLEANER_WEIGHTS_DIR (if set)
    tta: TTAConfig = field(default_factory=TTAConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    members: list[MemberConfig] = field(default_factory=lambda: [MemberConfig()])

    def resolved_min_flags(self, rounds: int) -> int:
        """T for a plan with `rounds` judgements per image (all of them when unset)."""
        return self.min_flags if self.min_flags is not None else rounds


def build_section(cls, data: Any, where: str):
    """Build dataclass `cls` from a mapping, naming any unknown key (values are checked by validate)."""
    if data is None:
        return cls()
    if not isinstance(data, dict):
        raise DataCleanerError(f"config: '{where}' must be a mapping of keys, got {data!r}")
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise DataCleanerError(
            f"config: unknown key '{where + '.' if where else ''}{unknown[0]}'; "
            f"valid keys here: {', '.join(sorted(known))}"
        )
    kwargs = {}
    for key, value in data.items():
        sub = {"tta": TTAConfig, "augment": AugmentConfig}.get(key) if cls is CleanConfig else None
        if sub is not None:
            value = build_section(sub, value, key)
        elif cls is CleanConfig and key == "members":
            if not isinstance(value, list) or not value:
                raise DataCleanerError(f"config: members = {value!r}: expected a non-empty list of members")
            value = [build_section(MemberConfig, m, f"members[{i}]") for i, m in enumerate(value)]
        kwargs[key] = value
    return cls(**kwargs)


def select_members(members: list[MemberConfig], names: list[str]) -> list[MemberConfig]:
    """Configured members by name; an unknown name becomes a timm arch with the first member's recipe."""
    by_label = {m.label: m for m in members}
    chosen = []
    for name in names:
        if name in by_label:
            chosen.append(by_label[name])
        else:
            chosen.append(dataclasses.replace(members[0], arch=name, name=None, pretrained_file=None))
    return chosen


def to_dict(cfg: CleanConfig) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def dump_config(cfg: CleanConfig) -> str:
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)
