"""Frozen backbones on ONNX Runtime: exported once, cached on disk, run on the CPU.  [torch, onnxruntime]

On a CPU, a frozen member's forward passes are most of a `clean` (docs/benchmarks.md). ONNX
Runtime, the inference engine CPU deployments use, runs the same backbone faster than torch in
eager mode, with features equal to torch's within float rounding. The exported graph maps
normalised views (n, 3, s, s) float32 to the backbone's pre-logits features (n, D); a member's
logits are those features times its linear classifier, applied here in numpy, so one file serves
both the pretrained backbone of a `clean` and a trained bundle member of `select`.

Cache: <cache>/onnx/<arch>-<size>px-<key>.onnx, key = digest of the backbone's tensors (the
classifier left out), the input size, the opset and the torch and timm versions. It is a cache,
never the only copy of a member: a stale or broken file is rebuilt, a missing one exported again.
<cache> is $DATACLEANER_CACHE_DIR, else $XDG_CACHE_HOME/datacleaner, else ~/.cache/datacleaner.

`engine` (config.ENGINES): 'auto' and 'onnxruntime' run frozen members on ONNX Runtime on the
CPU; 'torch' never does. Torch stays the path on a GPU, for fine-tuned members, and wherever
the export or the runtime fails: then the run says so in one line (and why), and goes on.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .keys import digest
from .tables import write_bytes_atomic

OPSET = 18
CACHE_ENV = "DATACLEANER_CACHE_DIR"
FORMAT = 1  # bump when the exported graph changes meaning

_sessions: dict[str, object] = {}  # onnx path -> InferenceSession, per process
_lock = threading.Lock()


def cache_dir() -> Path:
    """Where exported backbones are kept (see the module docstring)."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "datacleaner"


def wanted(engine: str, frozen: bool, device: torch.device) -> bool:
    """Whether a member should run on ONNX Runtime: a frozen member on the CPU, unless engine is 'torch'."""
    return engine != "torch" and frozen and device.type == "cpu"


@dataclass
class Run:
    """Which engine ran a member's forward passes, and why when it is not the one asked for."""

    engine: str  # 'onnxruntime' or 'torch'
    note: str = ""  # why torch ran where ONNX Runtime was asked for (empty otherwise)


class OnnxBackbone:
    """A backbone as an ONNX Runtime session: views (n, 3, s, s) -> pre-logits features (n, D) float32."""

    def __init__(self, session, path: Path):
        self.session, self.path = session, path
        self.input = session.get_inputs()[0].name

    def __call__(self, views: torch.Tensor) -> np.ndarray:
        x = views.contiguous().numpy().astype(np.float32, copy=False)  # NCHW, as exported
        return self.session.run(None, {self.input: x})[0]


def classifier(model: torch.nn.Module) -> tuple[np.ndarray, np.ndarray] | None:
    """(W (C, D), b (C,)) of the model's linear classifier as float32 numpy, None when it is not one Linear."""
    clf = model.get_classifier() if hasattr(model, "get_classifier") else None
    if not isinstance(clf, torch.nn.Linear):
        return None
    bias = clf.bias if clf.bias is not None else torch.zeros(clf.out_features)
    return clf.weight.detach().float().cpu().numpy(), bias.detach().float().cpu().numpy()


def backbone_digest(model: torch.nn.Module) -> str:
    """Digest of every tensor of the model but its classifier: what the exported graph computes."""
    clf = model.get_classifier() if hasattr(model, "get_classifier") else None
    skip = {name for name, m in model.named_modules() if clf is not None and m is clf and name}
    h = hashlib.sha256()
    for name, t in model.state_dict().items():
        if any(name.startswith(prefix + ".") for prefix in skip):
            continue
        h.update(name.encode())
        h.update(str(t.dtype).encode())
        h.update(np.ascontiguousarray(t.detach().cpu().float().numpy()).tobytes())
    return h.hexdigest()[:16]


class _Features(torch.nn.Module):
    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.forward_head(self.model.forward_features(x), pre_logits=True).flatten(1)


def onnx_path(model: torch.nn.Module, size: int) -> Path:
    import timm

    arch = getattr(model, "pretrained_cfg", {}).get("architecture") or type(model).__name__
    key = digest([FORMAT, arch, size, backbone_digest(model), OPSET, torch.__version__.split("+")[0], timm.__version__])
    return cache_dir() / "onnx" / f"{arch}-{size}px-{key}.onnx"


def export(model: torch.nn.Module, size: int, path: Path) -> None:
    """Export the model's backbone (pre-logits features) at `size` px with a dynamic batch, as one file."""
    was_training = model.training
    model.eval()
    example = torch.zeros(2, 3, size, size)
    sink = io.StringIO()
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                _Features(model).eval(), (example,), None, input_names=["views"], output_names=["features"],
                dynamic_shapes=({0: torch.export.Dim("batch")},), opset_version=OPSET, dynamo=True, verbose=False,
            )
        write_bytes_atomic(path, program.model_proto.SerializeToString())
    finally:
        model.train(was_training)


def _session(path: Path, threads: int):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")  # torch runs next in this process
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def onnx_backbone(model: torch.nn.Module, size: int) -> tuple[OnnxBackbone | None, Run]:
    """The model's backbone on ONNX Runtime (exported into the cache when it is not there yet), or None
    and the reason when ONNX Runtime cannot run it (then torch runs it)."""
    try:
        import onnxruntime  # noqa: F401
    except ImportError as exc:
        return None, Run("torch", f"onnxruntime is not installed ({exc}); pip install onnxruntime onnxscript")
    try:
        path = onnx_path(model, size)
    except Exception as exc:  # an architecture without timm's forward_head
        return None, Run("torch", f"no backbone to export ({str(exc).splitlines()[0][:160]})")
    threads = max(1, torch.get_num_threads())
    key = f"{path}:{threads}"
    with _lock:
        if key in _sessions:
            return _sessions[key], Run("onnxruntime")
        for attempt in (0, 1):
            try:
                if not path.is_file():
                    export(model, size, path)
                backbone = OnnxBackbone(_session(path, threads), path)
                break
            except Exception as exc:  # export unsupported, runtime refused the graph, a broken cache file
                reason = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ''}"
                if attempt == 0 and path.is_file():
                    path.unlink(missing_ok=True)  # a stale or broken cache file: export again once
                    continue
                return None, Run("torch", f"ONNX Runtime could not run it ({reason})")
        _sessions[key] = backbone
        return backbone, Run("onnxruntime")


def engine_for(engine: str, frozen: bool, device: torch.device, model: torch.nn.Module, size: int
               ) -> tuple[OnnxBackbone | None, Run]:
    """The backbone runner for a member (None: torch runs it) and which engine that is."""
    if not wanted(engine, frozen, device):
        reason = "" if engine != "onnxruntime" else (
            "ONNX Runtime runs frozen members only" if not frozen else f"ONNX Runtime runs on the CPU only, not {device.type}")
        return None, Run("torch", reason)
    return onnx_backbone(model, size)
