"""`datacleaner doctor`: what this machine has, and whether a run with a given config would start.

Checks, without training: Python, torch and timm versions, the device a run would use (CUDA
name and memory, or CPU threads), whether Ray is installed, the profile a run would use (for
`doctor DATA`, chosen from a sample of the data as `clean DATA` would choose it), and for
every member of the config where its pretrained weights would come from (weights folder,
Hugging Face cache, or the hub, probed with a short timeout). Any problem that would stop
a run is reported with its reason.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
from dataclasses import dataclass, field

from . import __version__
from .config import CleanConfig, resolve_config
from .errors import DataCleanerError


@dataclass
class Report:
    facts: list[tuple[str, str]] = field(default_factory=list)  # (what, value), in order
    problems: list[str] = field(default_factory=list)  # each would stop a run

    def add(self, what: str, value: str) -> None:
        self.facts.append((what, value))


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def examine(config=None, overrides: dict | None = None, data=None) -> Report:
    """The report for a run with `config` (a profile name, a YAML path, a CleanConfig, or None for
    the default profile, chosen from `data` when given) and `overrides` (e.g. weights_dir)."""
    report = Report()
    report.add("datacleaner", __version__)
    report.add("python", f"{platform.python_version()} ({platform.machine()}, {platform.system()})")
    import torch
    import timm

    report.add("torch", f"{torch.__version__} (CUDA build: {torch.version.cuda or 'none'})")
    report.add("timm", timm.__version__)
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        report.add("gpu", f"{props.name}, {props.total_memory / 2**30:.1f} GiB ({torch.cuda.device_count()} visible)")
    else:
        report.add("gpu", "none: torch sees no CUDA GPU")
    report.add("cpu", f"{os.cpu_count()} cores")
    ray = _version("ray")
    report.add("ray", f"{ray} (--executor ray works)" if ray else "not installed (pip install 'datacleaner[ray]' for --executor ray)")
    if data is not None:
        from .choice import look_at

        shape = look_at(data)
        report.add("data", f"{data}: {shape.describe()} (from {shape.sampled} sampled images)" if shape
                   else f"{data}: could not be listed or sampled (a run would say why)")
    try:
        cfg, origin = resolve_config(config, overrides, data)
    except DataCleanerError as exc:
        report.problems.append(str(exc))
        return report
    report.add("profile", f"{origin.profile} ({origin.reason})")
    _device(report, cfg, torch)
    if cfg.executor == "ray" and not ray:
        report.problems.append("the config asks for executor: ray but Ray is not installed: pip install 'datacleaner[ray]'")
    _weights(report, cfg)
    return report


def _device(report: Report, cfg: CleanConfig, torch) -> None:
    from .models import resolve_device

    try:
        device = resolve_device(cfg.device)
    except DataCleanerError as exc:
        report.problems.append(str(exc))
        return
    threads = cfg.threads or os.cpu_count()
    report.add("device", f"{device} (device: {cfg.device})" + (f", {threads} torch threads" if device.type == "cpu" else ""))
    frozen = [m.label for m in cfg.members if m.frozen]
    if frozen:
        ort = _version("onnxruntime")
        if cfg.engine == "torch" or device.type != "cpu":
            why = "engine: torch" if cfg.engine == "torch" else f"ONNX Runtime runs on the CPU only, not {device.type}"
            report.add("engine", f"torch for {', '.join(frozen)} ({why})")
        elif ort:
            report.add("engine", f"onnxruntime {ort} for {', '.join(frozen)} (engine: {cfg.engine}; exported once into "
                                 f"{_onnx_cache()})")
        else:
            report.add("engine", f"torch for {', '.join(frozen)}: onnxruntime is not installed (pip install onnxruntime "
                                 "onnxscript for 1.5x faster features on the CPU)")
    if device.type == "cpu" and any(not m.frozen for m in cfg.members) and any(m.pretrained for m in cfg.members):
        report.add("note", "fine-tuning pretrained members on a CPU is slow; the cpu profile (frozen members) is made for it")


def _onnx_cache() -> str:
    from .engines import cache_dir

    return str(cache_dir() / "onnx")


def _weights(report: Report, cfg: CleanConfig) -> None:
    from .weights import locate, weights_folder

    try:
        folder = weights_folder(cfg)
    except DataCleanerError as exc:
        report.problems.append(str(exc))
        return
    report.add("weights dir", str(folder) if folder else "none (--weights-dir or $DATACLEANER_WEIGHTS_DIR)")
    for m in cfg.members:
        what = f"member {m.label}" + (f" ({m.arch})" if m.label != m.arch else "")
        if not (m.pretrained or m.pretrained_file):
            report.add(what, "trained from scratch: needs no weights")
            continue
        try:
            report.add(what, f"weights from {locate(m, folder).describe()}")
        except DataCleanerError as exc:
            report.add(what, "NO WEIGHTS (below)")
            report.problems.append(str(exc))
