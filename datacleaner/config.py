"""Typed configuration: defaults < profile or YAML file < command-line flags.

Every section is a dataclass with commented defaults. `load_config` reads a built-in
profile (`cpu`, `gpu`, `small`: YAML files shipped inside the package, also readable
in the repository's `configs/`) or a YAML file, rejects unknown keys by name, applies
overrides, and `validate` checks every value's type and range before any work. The
resolved config is written next to a run's outputs (`config.yaml`).
"""

from __future__ import annotations

import copy
import dataclasses
import os
import types
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from .errors import DataCleanerError
from .health import parse_checks
from .scoring import FLAG_RULES, QUALITY_METHODS

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
    cpus: float = 2.0  # --executor ray: CPUs each of this member's jobs asks for (its torch threads)
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
    batch_size_predict: int | None = None  # views per forward pass at judgement; None = 64 on the CPU, 1024 on a GPU
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


# Allowed values beyond the type: a Bound for numbers, a tuple of choices for text. -------------


@dataclass(frozen=True)
class Bound:
    low: float | None = None
    high: float | None = None
    low_open: bool = False  # low itself not allowed
    high_open: bool = False

    def admits(self, v: float) -> bool:
        above = self.low is None or (v > self.low if self.low_open else v >= self.low)
        below = self.high is None or (v < self.high if self.high_open else v <= self.high)
        return above and below

    def describe(self, kind: str) -> str:
        if self.high is None:
            return f"{kind} {'>' if self.low_open else '>='} {self.low:g}"
        return f"{kind} in {'(' if self.low_open else '['}{self.low:g}, {self.high:g}{')' if self.high_open else ']'}"


UNIT = Bound(0, 1)  # probabilities
FRACTION = Bound(0, 1, high_open=True)
NONNEG, POSITIVE = Bound(0), Bound(0, low_open=True)

LIMITS: dict[type, dict[str, Bound | tuple[str, ...]]] = {
    CleanConfig: {
        "scheme": SCHEMES, "folds": Bound(2), "device": DEVICES, "threads": NONNEG, "engine": ENGINES, "fusion": FUSIONS, "tau": UNIT,
        "flag_rule": FLAG_RULES, "label_quality": QUALITY_METHODS, "passes": Bound(1, 2), "min_flags": Bound(1),
        "min_error_prob": UNIT,
        "cache_size": Bound(8), "batch_size_predict": Bound(1), "shard_images": Bound(1), "cache_memory_gb": NONNEG,
        "memory_gb": POSITIVE,
        "executor": EXECUTORS, "retries": NONNEG,
    },
    TTAConfig: {"mode": TTA_MODES, "views": Bound(1)},
    AugmentConfig: {
        "hflip": UNIT, "vflip": UNIT, "rotate": Bound(0, 180), "brightness": NONNEG, "contrast": NONNEG,
        "saturation": NONNEG, "hue": Bound(0, 0.5),
    },
    MemberConfig: {
        "weight": NONNEG, "img_size": Bound(8), "epochs": Bound(1), "batch_size": Bound(1), "optimizer": OPTIMIZERS,
        "lr": POSITIVE, "momentum": FRACTION, "weight_decay": NONNEG, "warmup_epochs": NONNEG, "schedule": SCHEDULES,
        "restart_epochs": NONNEG, "snapshots": NONNEG, "label_smoothing": FRACTION, "focal_gamma": NONNEG, "flooding": NONNEG,
        "drop_rate": FRACTION, "drop_path_rate": FRACTION, "head_l2": NONNEG, "cpus": POSITIVE, "gpus": NONNEG,
    },
}


def _fits(value: Any, hint: Any) -> bool:
    """Does `value` (as YAML or Python gave it) have the declared type `hint`?"""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, arg) for arg in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value and abs(value) != float("inf")
    if origin is list:
        return isinstance(value, list) and all(_fits(v, typing.get_args(hint)[0]) for v in value)
    return isinstance(value, hint)


def _describe(hint: Any) -> str:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(arg) for arg in typing.get_args(hint))
    if origin is list:
        item = typing.get_args(hint)[0]
        return "a list of members" if item is MemberConfig else f"a list of {_describe(item).split(' ', 1)[1]}s"
    return {type(None): "null", bool: "true or false", int: "an integer", float: "a number", str: "a text"}.get(
        hint, "a mapping"
    )


def _bad(where: str, value: Any, expected: str) -> DataCleanerError:
    return DataCleanerError(f"config: {where} = {value!r}: expected {expected}")


def _check_values(obj: Any, where: str = "") -> None:
    """Every field of a config dataclass against its declared type and allowed values (LIMITS),
    members and sections included; integers given for float fields become floats."""
    hints = typing.get_type_hints(type(obj))
    limits = LIMITS.get(type(obj), {})
    for f in dataclasses.fields(obj):
        value, hint, key = getattr(obj, f.name), hints[f.name], f"{where}{f.name}"
        limit = limits.get(f.name)
        if not _fits(value, hint):
            if isinstance(limit, Bound):  # "a number > 0" says more than "a number"
                raise _bad(key, value, _describe_limit(limit, hint) + (" or null" if _fits(None, hint) else ""))
            raise _bad(key, value, _describe(hint))
        if hint is float and isinstance(value, int):
            setattr(obj, f.name, float(value))
        if dataclasses.is_dataclass(value):
            _check_values(value, f"{key}.")
        elif f.name == "members":
            for i, m in enumerate(value):
                _check_values(m, f"members[{i}].")
        if value is None or limit is None:
            continue
        if isinstance(limit, tuple) and value not in limit:
            raise _bad(key, value, f"one of {', '.join(limit)}")
        if isinstance(limit, Bound) and not limit.admits(value):
            raise _bad(key, value, _describe_limit(limit, hint))


def _describe_limit(limit: Bound, hint: Any) -> str:
    return limit.describe("an integer" if int in (hint, *typing.get_args(hint)) else "a number")


def _check_pair(where: str, value: list[float], high: float | None) -> None:
    if len(value) != 2 or not (0 < value[0] <= value[1] and (high is None or value[1] <= high)):
        raise _bad(where, value, f"[low, high] with 0 < low <= high{f' <= {high:g}' if high else ''}")


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise DataCleanerError(f"config: {message}")


def validate(cfg: CleanConfig) -> CleanConfig:
    """Check every value's type and range, then how values fit together; raise DataCleanerError
    naming the first problem (key, value and what is expected) before any work starts."""
    _check_values(cfg)
    try:
        parse_checks(cfg.checks)
    except ValueError as exc:
        raise DataCleanerError(f"config: checks = {cfg.checks!r}: {exc}") from None
    _check_pair("augment.scale", cfg.augment.scale, 1.0)
    _check_pair("augment.ratio", cfg.augment.ratio, None)
    rounds = cfg.folds - 1 if cfg.scheme == "dling" else 1
    if cfg.min_flags is not None:
        _check(
            cfg.min_flags <= rounds,
            f"min_flags (T) must be an integer in [1, {rounds}] for scheme {cfg.scheme} "
            f"with {cfg.folds} folds, got {cfg.min_flags}",
        )
    if cfg.tta.mode == "deterministic":
        names = [v[0] for v in deterministic_views(cfg.augment)]
        _check(
            cfg.tta.views <= len(names),
            f"tta.views={cfg.tta.views} but deterministic TTA has {len(names)} views for this augmentation "
            f"({', '.join(names)}; flips only where training flips): lower tta.views or use tta.mode: augment",
        )
    _check(bool(cfg.members), "'members' must be a non-empty list of members")
    labels = [m.label for m in cfg.members]
    _check(len(set(labels)) == len(labels), f"member names must be unique, got {labels} (set 'name:')")
    for i, m in enumerate(cfg.members):
        where = f"member '{m.label}'"
        for key in ("mean", "std"):
            value = getattr(m, key)
            if value is not None and (len(value) != 3 or (key == "std" and min(value) <= 0)):
                raise _bad(f"members[{i}].{key}", value, "three numbers, one per RGB channel" + (", each > 0" if key == "std" else ""))
        _check(not (m.pretrained and m.pretrained_file), f"{where}: set pretrained or pretrained_file, not both")
        _check(
            not m.frozen or m.pretrained or bool(m.pretrained_file),
            f"{where}: a frozen member needs pretrained weights (pretrained: true or pretrained_file: PATH)",
        )
        _check_snapshots(m)
    voices = [j.label for j in judges(cfg.members)]
    _check(len(set(voices)) == len(voices), f"member and snapshot names must be unique, got {voices} (set 'name:')")
    _check(sum(m.weight for m in cfg.members) > 0, "at least one member needs a weight > 0")
    return cfg


def _check_snapshots(m: MemberConfig) -> None:
    """snapshots: S needs a fine-tuned member whose cosine_restarts cycles divide its epochs into at least S."""
    where = f"member '{m.label}'"
    if m.snapshot_weights is not None:
        _check(len(m.snapshot_weights) == m.snapshots and min(m.snapshot_weights, default=0) >= 0,
               f"{where}: snapshot_weights needs {m.snapshots} numbers >= 0 (one per snapshot), got {m.snapshot_weights}")
    if not m.snapshots:
        return
    _check(not m.frozen, f"{where}: snapshots need a fine-tuned member (frozen: false); a frozen member trains no cycles")
    _check(m.schedule == "cosine_restarts" and m.restart_epochs > 0,
           f"{where}: snapshots: {m.snapshots} needs schedule: cosine_restarts and restart_epochs (the cycle length "
           f"in epochs), e.g. restart_epochs: {max(1, m.epochs // max(2, m.snapshots))}")
    _check(m.epochs % m.restart_epochs == 0,
           f"{where}: epochs ({m.epochs}) must be a multiple of restart_epochs ({m.restart_epochs}) so that every "
           "snapshot is taken at the end of a cycle, with the learning rate near 0")
    _check(m.warmup_epochs < m.restart_epochs,
           f"{where}: warmup_epochs ({m.warmup_epochs:g}) must be shorter than a cycle (restart_epochs {m.restart_epochs})")
    _check(m.snapshots <= m.cycles,
           f"{where}: snapshots: {m.snapshots} but only {m.cycles} cycle(s) of {m.restart_epochs} epochs fit in "
           f"{m.epochs} epochs: lower snapshots or restart_epochs, or raise epochs")


# Built-in profiles ---------------------------------------------------------------------------


def _profiles_dir():
    return resources.files("datacleaner") / "profiles"


def profile_names() -> list[str]:
    """The built-in profiles, shipped inside the package (`datacleaner/profiles/*.yaml`)."""
    return sorted(p.name[: -len(".yaml")] for p in _profiles_dir().iterdir() if p.name.endswith(".yaml"))


def profile_text(name: str) -> str:
    """A built-in profile's YAML, comments included: a starting point to copy and edit."""
    if name not in profile_names():
        raise DataCleanerError(f"no built-in profile '{name}'; the profiles are {', '.join(profile_names())}")
    return (_profiles_dir() / f"{name}.yaml").read_text(encoding="utf-8")


def profile_summary(name: str) -> str:
    """The profile's first comment line: what it is for, in one line."""
    return profile_text(name).splitlines()[0].lstrip("# ").strip()


def default_profile(device: str | None = None) -> tuple[str, str]:
    """(profile, why) for a run given no config: `gpu` when a CUDA GPU will be used, `cpu` otherwise."""
    if device in ("cpu", "mps"):
        return "cpu", f"no --config given and --device {device}"
    import torch

    if torch.cuda.is_available():
        return "gpu", f"no --config given and a CUDA GPU is present ({torch.cuda.get_device_name(0)})"
    if device == "cuda":
        return "gpu", "no --config given and --device cuda"
    return "cpu", "no --config given and no CUDA GPU found"


@dataclass(frozen=True)
class ConfigOrigin:
    """Where a run's config came from, for the printed summary and summary.json."""

    profile: str  # a built-in profile's name, a YAML file's path, or 'custom' (a config object)
    reason: str


def _is_path(config: str | Path) -> bool:
    text = str(config)
    return isinstance(config, Path) or "/" in text or os.sep in text or text.endswith((".yaml", ".yml"))


def _read_yaml(text: str, where: str) -> dict[str, Any]:
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise DataCleanerError(f"{where} is not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise DataCleanerError(f"{where} must hold a mapping of keys")
    return data


def _read_config_file(path: Path, chain: tuple[str, ...] = (), bases: list[str] | None = None) -> dict[str, Any]:
    """A YAML config with its `base` (a built-in profile or another YAML file, relative to this
    one) resolved: the base's keys, then this file's on top (sections such as tta merge key by
    key; a list such as members replaces the base's). Relative pretrained_file and weights_dir
    paths are relative to the file that names them."""
    if not path.is_file():
        raise DataCleanerError(
            f"config {path} does not exist; pass a YAML file or a built-in profile ({', '.join(profile_names())})"
        )
    data = _read_yaml(path.read_text(encoding="utf-8"), f"config file {path}")
    here = path.resolve().parent
    _absolute_paths(data, here)
    if "base" not in data:
        return data
    base = data.pop("base")
    chain = (*chain, str(path.resolve()))
    if bases is not None:
        bases.append(str(base))
    if not isinstance(base, str) or not base.strip():
        raise DataCleanerError(
            f"config file {path}: base: {base!r} must name a built-in profile ({', '.join(profile_names())}) or a YAML file"
        )
    if not _is_path(base) and base in profile_names():
        return _merge(_read_yaml(profile_text(base), f"built-in profile {base}"), data)
    target = Path(base) if Path(base).is_absolute() else here / base
    if str(target.resolve()) in chain:
        loop = " -> ".join(Path(p).name for p in (*chain, str(target.resolve())))
        raise DataCleanerError(f"config file {path}: base: {base} leads back to itself ({loop}); remove one of the bases")
    if not target.is_file():
        raise DataCleanerError(
            f"config file {path}: base: {base} is neither a built-in profile ({', '.join(profile_names())}) "
            f"nor a file ({target} does not exist)"
        )
    return _merge(_read_config_file(target, chain, bases), data)


def _absolute_paths(data: dict[str, Any], here: Path) -> None:
    for m in data.get("members") if isinstance(data.get("members"), list) else []:
        if isinstance(m, dict) and isinstance(m.get("pretrained_file"), str) and not Path(m["pretrained_file"]).is_absolute():
            m["pretrained_file"] = str(here / m["pretrained_file"])
    if isinstance(data.get("weights_dir"), str) and not Path(data["weights_dir"]).is_absolute():
        data["weights_dir"] = str(here / data["weights_dir"])


def _merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    """`top`'s keys over `base`'s; mappings (tta, augment) merge key by key, anything else replaces."""
    merged = dict(base)
    for key, value in top.items():
        merged[key] = _merge(base[key], value) if isinstance(value, dict) and isinstance(base.get(key), dict) else value
    return merged


def resolve_config(
    config: str | Path | CleanConfig | None = None, overrides: dict[str, Any] | None = None,
    data: str | Path | None = None,
) -> tuple[CleanConfig, ConfigOrigin]:
    """The validated config and where it came from. `config`: a built-in profile name, a YAML path,
    a CleanConfig, or None for the default profile: chosen from `data` and the device when the data
    is given (choice.py), else `gpu` with a CUDA GPU and `cpu` without. Then
    `overrides` (flat keys of CleanConfig, plus 'epochs' applied to every member, 'tta_views', and
    'members' selecting configured members or adding timm architectures with the first one's recipe)."""
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    if isinstance(config, CleanConfig):
        cfg, origin = copy.deepcopy(config), ConfigOrigin("custom", "config object given")  # the caller's stays as it is
    else:
        if config is not None and (_is_path(config) or str(config) not in profile_names()):
            bases: list[str] = []
            data = _read_config_file(Path(config), bases=bases)
            origin = ConfigOrigin(str(config), "YAML file given" + (f", base {' -> '.join(bases)}" if bases else ""))
        else:
            if config is not None:
                origin = ConfigOrigin(str(config), "built-in profile given by name")
            elif data is not None:
                from .choice import choose_profile, look_at

                origin = ConfigOrigin(*choose_profile(look_at(data), overrides.get("device")))
            else:
                origin = ConfigOrigin(*default_profile(overrides.get("device")))
            data = _read_yaml(profile_text(origin.profile), f"built-in profile {origin.profile}")
        cfg = _build(CleanConfig, data, "")
    for key, value in overrides.items():
        if key == "epochs":
            for m in cfg.members:
                m.epochs = value
        elif key == "members":
            cfg.members = _select_members(cfg.members, value)
        elif key == "tta_views":
            cfg.tta.views = value
        elif key == "weights_dir":
            cfg.weights_dir = str(Path(value).resolve())
        elif key == "min_error_prob" and value == "auto":
            cfg.min_error_prob = None
        elif key in {f.name for f in dataclasses.fields(CleanConfig)}:
            setattr(cfg, key, value)
        else:
            raise DataCleanerError(f"unknown override '{key}'; valid: epochs, members, tta_views and the top-level config keys")
    return validate(cfg), origin


def load_config(config: str | Path | CleanConfig | None = None, overrides: dict[str, Any] | None = None) -> CleanConfig:
    """A validated CleanConfig from a built-in profile name, a YAML path or a CleanConfig (None: the
    default profile for this machine), with `overrides` on top; see resolve_config."""
    return resolve_config(config, overrides)[0]


def _build(cls, data: Any, where: str):
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
            value = _build(sub, value, key)
        elif cls is CleanConfig and key == "members":
            if not isinstance(value, list) or not value:
                raise DataCleanerError(f"config: members = {value!r}: expected a non-empty list of members")
            value = [_build(MemberConfig, m, f"members[{i}]") for i, m in enumerate(value)]
        kwargs[key] = value
    return cls(**kwargs)


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
