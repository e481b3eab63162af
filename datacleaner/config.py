"""Typed configuration: defaults < profile or YAML file < command-line flags.

Every section is a dataclass with commented defaults (settings.py). `load_config` reads a built-in
profile (`cpu`, `gpu`, `small`: YAML files shipped inside the package, also readable
in the repository's `configs/`) or a YAML file, rejects unknown keys by name, applies
overrides, and `validate` (validate.py) checks every value's type and range before any work. The
resolved config is written next to a run's outputs (`config.yaml`).
"""

from __future__ import annotations

import copy
import dataclasses
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from .choice import default_profile
from .errors import DataCleanerError
from .settings import (DETERMINISTIC_VIEWS, DEVICES, ENGINES, EXECUTORS, FUSIONS, JUDGING_ONLY, OPTIMIZERS, SCHEDULES,
                       SCHEMES, TTA_MODES, AugmentConfig, CleanConfig, Judge, MemberConfig, TTAConfig, build_section,
                       deterministic_views, dump_config, judges, select_members, set_judge_weight, to_dict)
from .validate import validate

__all__ = [
    "DETERMINISTIC_VIEWS", "DEVICES", "ENGINES", "EXECUTORS", "FUSIONS", "JUDGING_ONLY", "OPTIMIZERS", "SCHEDULES",
    "SCHEMES", "TTA_MODES", "AugmentConfig", "CleanConfig", "ConfigOrigin", "Judge", "MemberConfig", "TTAConfig",
    "default_profile", "deterministic_views", "dump_config", "judges", "load_config", "profile_names", "profile_summary",
    "profile_text", "resolve_config", "set_judge_weight", "to_dict", "validate",
]


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
        cfg = build_section(CleanConfig, data, "")
    for key, value in overrides.items():
        if key == "epochs":
            for m in cfg.members:
                m.epochs = value
        elif key == "members":
            cfg.members = select_members(cfg.members, value)
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
