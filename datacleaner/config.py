"""Typed configuration: defaults < YAML file < command-line flags.

Every section is a dataclass with commented defaults. `load_config` reads a YAML
file, rejects unknown keys by name, applies overrides and validates values. The
resolved config is written next to a run's outputs (`config.yaml`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import DataCleanerError
from .scoring import FLAG_RULES, QUALITY_METHODS

SCHEMES = ("dling", "cv")
FUSIONS = ("logits", "probs")
OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("cosine", "cosine_restarts", "constant")
TTA_MODES = ("deterministic", "augment")
DEVICES = ("auto", "cpu", "cuda", "mps")
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
    restart_epochs: int = 0  # cycle length for cosine_restarts (0 = epochs)
    label_smoothing: float = 0.0  # epsilon
    focal_gamma: float = 0.0  # 0 = plain cross-entropy
    flooding: float = 0.0  # b: train on |loss - b| + b; 0 = off
    drop_rate: float = 0.0  # dropout before the classifier
    drop_path_rate: float = 0.0  # stochastic depth
    amp: bool = True  # mixed precision on CUDA (bf16 where supported)
    frozen: bool = False  # keep the pretrained backbone frozen: its TTA features are computed once per
    #                       image and cached; each round trains only a logistic-regression head on them
    head_l2: float = 0.03  # frozen members: L2 penalty of the head on standardised features (README: benchmark)
    cpus: float = 2.0  # --executor ray: CPUs each of this member's jobs asks for (its torch threads)
    gpus: float = 0.0  # --executor ray: GPUs each of this member's jobs asks for (fractions share a GPU)

    @property
    def label(self) -> str:
        return self.name or self.arch


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
    cache_size: int | None = None  # side of the decoded-image cache; None = largest member size
    batch_size_predict: int | None = None  # views per forward pass at judgement; None = 64 on the CPU, 1024 on a GPU
    shard_images: int = 4096  # images per prediction job (and per chunk held in memory)
    cache_memory_gb: float = 2.0  # decoded images up to this size are held in RAM; larger ones stay memory-mapped on disk
    compile: bool = False  # torch.compile members on CUDA (slower start, faster steps on long runs)
    executor: str = "local"  # local | ray
    ray_address: str | None = None  # existing Ray cluster (HOST:6379 or ray://HOST:10001); None = start one locally
    retries: int = 3  # --executor ray: times a failed or lost job is retried
    tta: TTAConfig = field(default_factory=TTAConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    members: list[MemberConfig] = field(default_factory=lambda: [MemberConfig()])

    def resolved_min_flags(self, rounds: int) -> int:
        """T for a plan with `rounds` judgements per image (all of them when unset)."""
        return self.min_flags if self.min_flags is not None else rounds


def _build(cls, data: Any, where: str):
    """Build dataclass `cls` from a mapping, naming any unknown key."""
    if data is None:
        return cls()
    if not isinstance(data, dict):
        raise DataCleanerError(f"config: '{where}' must be a mapping, got {type(data).__name__}")
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise DataCleanerError(
            f"config: unknown key '{where + '.' if where else ''}{unknown[0]}'; "
            f"valid keys here: {', '.join(sorted(known))}"
        )
    kwargs = {}
    for key, value in data.items():
        sub = {"tta": TTAConfig, "augment": AugmentConfig}.get(key) if cls is CleanConfig else None
        if sub is not None:
            value = _build(sub, value, key)
        elif cls is CleanConfig and key == "members":
            if not isinstance(value, list) or not value:
                raise DataCleanerError("config: 'members' must be a non-empty list of members")
            value = [_build(MemberConfig, m, f"members[{i}]") for i, m in enumerate(value)]
        kwargs[key] = value
    return cls(**kwargs)


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise DataCleanerError(f"config: {message}")


def validate(cfg: CleanConfig) -> CleanConfig:
    """Raise DataCleanerError naming the first invalid value."""
    _check(cfg.scheme in SCHEMES, f"scheme '{cfg.scheme}' is not one of {', '.join(SCHEMES)}")
    _check(isinstance(cfg.folds, int) and cfg.folds >= 2, f"folds must be an integer >= 2, got {cfg.folds}")
    _check(cfg.fusion in FUSIONS, f"fusion '{cfg.fusion}' is not one of {', '.join(FUSIONS)}")
    _check(cfg.device in DEVICES, f"device '{cfg.device}' is not one of {', '.join(DEVICES)}")
    _check(0.0 <= float(cfg.tau) <= 1.0, f"tau must lie in [0, 1], got {cfg.tau}")
    rounds = cfg.folds - 1 if cfg.scheme == "dling" else 1
    if cfg.min_flags is not None:
        _check(
            isinstance(cfg.min_flags, int) and 1 <= cfg.min_flags <= rounds,
            f"min_flags (T) must be an integer in [1, {rounds}] for scheme {cfg.scheme} "
            f"with {cfg.folds} folds, got {cfg.min_flags}",
        )
    _check(cfg.passes in (1, 2), f"passes must be 1 or 2, got {cfg.passes}")
    _check(cfg.executor in EXECUTORS, f"executor '{cfg.executor}' is not one of {', '.join(EXECUTORS)}")
    _check(isinstance(cfg.shard_images, int) and cfg.shard_images >= 1, f"shard_images must be an integer >= 1, got {cfg.shard_images}")
    _check(cfg.cache_memory_gb >= 0, f"cache_memory_gb must be >= 0, got {cfg.cache_memory_gb}")
    _check(isinstance(cfg.retries, int) and cfg.retries >= 0, f"retries must be an integer >= 0, got {cfg.retries}")
    _check(cfg.flag_rule in FLAG_RULES, f"flag_rule '{cfg.flag_rule}' is not one of {', '.join(FLAG_RULES)}")
    _check(
        cfg.label_quality in QUALITY_METHODS,
        f"label_quality '{cfg.label_quality}' is not one of {', '.join(QUALITY_METHODS)}",
    )
    _check(cfg.tta.mode in TTA_MODES, f"tta.mode '{cfg.tta.mode}' is not one of {', '.join(TTA_MODES)}")
    _check(isinstance(cfg.tta.views, int) and cfg.tta.views >= 1, f"tta.views must be >= 1, got {cfg.tta.views}")
    if cfg.tta.mode == "deterministic":
        names = [v[0] for v in deterministic_views(cfg.augment)]
        _check(
            cfg.tta.views <= len(names),
            f"tta.views={cfg.tta.views} but deterministic TTA has {len(names)} views for this augmentation "
            f"({', '.join(names)}; flips only where training flips): lower tta.views or use tta.mode: augment",
        )
    labels = [m.label for m in cfg.members]
    _check(len(set(labels)) == len(labels), f"member names must be unique, got {labels} (set 'name:')")
    for m in cfg.members:
        where = f"member '{m.label}'"
        _check(m.optimizer in OPTIMIZERS, f"{where}: optimizer '{m.optimizer}' is not one of {', '.join(OPTIMIZERS)}")
        _check(m.schedule in SCHEDULES, f"{where}: schedule '{m.schedule}' is not one of {', '.join(SCHEDULES)}")
        _check(m.epochs >= 1 and m.batch_size >= 1, f"{where}: epochs and batch_size must be >= 1")
        _check(m.weight >= 0, f"{where}: weight must be >= 0, got {m.weight}")
        _check(not (m.pretrained and m.pretrained_file), f"{where}: set pretrained or pretrained_file, not both")
        _check(
            not m.frozen or m.pretrained or bool(m.pretrained_file),
            f"{where}: a frozen member needs pretrained weights (pretrained: true or pretrained_file: PATH)",
        )
        _check(m.head_l2 >= 0, f"{where}: head_l2 must be >= 0, got {m.head_l2}")
        _check(m.cpus > 0 and m.gpus >= 0, f"{where}: cpus must be > 0 and gpus >= 0, got {m.cpus} and {m.gpus}")
        if m.pretrained_file:
            _check(Path(m.pretrained_file).is_file(), f"{where}: pretrained_file {m.pretrained_file} does not exist")
    _check(sum(m.weight for m in cfg.members) > 0, "at least one member needs a weight > 0")
    return cfg


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> CleanConfig:
    """Defaults, then the YAML file at `path`, then `overrides` (flat keys of CleanConfig,
    plus 'epochs' applied to every member and 'members' selecting/adding architectures)."""
    data: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise DataCleanerError(f"config file {path} does not exist")
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise DataCleanerError(f"config file {path} is not valid YAML: {str(exc).splitlines()[0]}") from None
        if not isinstance(data, dict):
            raise DataCleanerError(f"config file {path} must hold a mapping of keys")
        if path.parent and "members" in data:  # pretrained_file paths are relative to the config file
            for m in data["members"] or []:
                if isinstance(m, dict) and m.get("pretrained_file") and not Path(m["pretrained_file"]).is_absolute():
                    m["pretrained_file"] = str((path.parent / m["pretrained_file"]).resolve())
    cfg = _build(CleanConfig, data, "")
    for key, value in (overrides or {}).items():
        if value is None:
            continue
        if key == "epochs":
            for m in cfg.members:
                m.epochs = value
        elif key == "members":
            cfg.members = _select_members(cfg.members, value)
        elif key == "tta_views":
            cfg.tta.views = value
        elif hasattr(cfg, key):
            setattr(cfg, key, value)
        else:
            raise DataCleanerError(f"unknown override '{key}'")
    return validate(cfg)


def _select_members(members: list[MemberConfig], names: list[str]) -> list[MemberConfig]:
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
