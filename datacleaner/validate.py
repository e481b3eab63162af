"""`validate`: every config value's type and range checked before any work, naming the key and what it
may be.  [pure]"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass
from typing import Any

from .errors import DataCleanerError
from .health import parse_checks
from .scoring import FLAG_RULES, QUALITY_METHODS
from .settings import (DEVICES, ENGINES, EXECUTORS, FUSIONS, OPTIMIZERS, SCHEDULES, SCHEMES, TTA_MODES, AugmentConfig,
                       CleanConfig, MemberConfig, TTAConfig, deterministic_views, judges)


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
