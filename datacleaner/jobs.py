"""The independent jobs of a run, as pure functions an executor can ship anywhere.  [torch]

Each takes plain values (configs, arrays, weight bytes) and returns bytes or arrays;
none reads or writes the run directory. `index` arguments are the images' positions in
the whole dataset: seeded TTA views depend on them, so a shard gives the same numbers
as the whole.
"""

from __future__ import annotations

import numpy as np
from safetensors.torch import load as load_bytes

from .config import AugmentConfig, MemberConfig, TTAConfig
from .engines import Run, engine_for
from .models import Preprocess, create_member_model, resolve_device
from .predict import predict_logits
from .progress import QUIET, Progress
from .training import batches_per_epoch, loader_workers, state_bytes, step_reporter, train_cycle, train_or_load


def train_job(
    *, member: MemberConfig, num_classes: int, images: np.ndarray, labels: np.ndarray, idx: np.ndarray,
    aug: AugmentConfig, prep: Preprocess, device: str, seed: int, desc: str, metadata: dict, compile: bool = False,
    pretrained_path: str | None = None, progress: Progress = QUIET,
) -> bytes:
    """Train one member on images[idx] from its seeded initialisation (pretrained weights from
    `pretrained_path`, or timm's hub); its weights as safetensors bytes."""
    model = create_member_model(member, num_classes, load_pretrained=True, seed=seed, pretrained_path=pretrained_path)
    train_or_load(
        model, None, images, labels, idx, member, aug, prep, device=resolve_device(device), seed=seed,
        progress=progress, desc=desc, compile=compile,
    )
    return state_bytes(model, arch=member.arch, **metadata)


def train_cycle_job(
    *, member: MemberConfig, num_classes: int, images: np.ndarray, labels: np.ndarray, idx: np.ndarray,
    aug: AugmentConfig, prep: Preprocess, device: str, seed: int, cycle: int, state: bytes | None, desc: str,
    compile: bool = False, pretrained_path: str | None = None, progress: Progress = QUIET,
) -> bytes:
    """One learning-rate cycle of a snapshot member on images[idx]: from `state` (the training state at
    the end of the cycle before; None: its seeded initialisation) to the training state (weights and
    optimizer, safetensors bytes) at the end of cycle `cycle`."""
    model = create_member_model(member, num_classes, load_pretrained=state is None, seed=seed, pretrained_path=pretrained_path)
    dev = resolve_device(device)
    with progress.bar(member.cycle_epochs * batches_per_epoch(len(idx), member.batch_size), desc, unit="step") as bar:
        return train_cycle(
            model, state, images, labels, idx, member, aug, prep, cycle, device=dev, seed=seed,
            workers=loader_workers(dev), on_step=step_reporter(bar, member), compile=compile,
        )


def predict_job(
    *, member: MemberConfig, num_classes: int, weights: bytes | None, images: np.ndarray, index: np.ndarray,
    prep: Preprocess, tta: TTAConfig, aug: AugmentConfig, seed: int, batch_size: int | None, device: str,
    features: bool = False, desc: str = "", compile: bool = False, pretrained_path: str | None = None,
    engine: str = "torch", progress: Progress = QUIET,
) -> tuple[np.ndarray, Run]:
    """(TTA logits (n, V, C) of a member on a shard `images` (n, S, S, 3) whose dataset positions are
    `index` (n,), with its trained `weights`; with `features` (and weights None), the pretrained
    backbone's (n, V, D) features in float16 instead, and which engine ran it). `engine`: the
    config's (engines.py): a frozen member on the CPU runs on ONNX Runtime unless it is 'torch'."""
    model = create_member_model(member, num_classes, load_pretrained=weights is None, pretrained_path=pretrained_path)
    if weights is not None:
        model.load_state_dict(load_bytes(weights))
    dev = resolve_device(device)
    backbone, run = engine_for(engine, member.frozen, dev, model, prep.size)
    with progress.bar(len(images), desc) as bar:
        out = predict_logits(
            model, images, np.arange(len(images)), prep, tta, aug, device=dev, seed=seed,
            batch_size=batch_size, amp=member.amp, on_batch=bar.update, features=features, view_index=index,
            compile=compile, backbone=backbone,
        )
    return (out.astype(np.float16) if features else out), run


def committee_job(*, committee, images: np.ndarray, index: np.ndarray, desc: str = "", progress: Progress = QUIET,
                  health_mean: np.ndarray | None = None) -> dict:
    """A committee's view of a shard of pool images (n, S, S, 3) at positions `index` (n,): fused
    probabilities (n, C) and each member's view-averaged probabilities (n, M, C), float32. The
    (n, M, V, C) logits live only inside this job. With `health_mean` (the labeled set's feature
    mean), also "features": compact features (n, d) float16 to compare with the labeled set's; "engines":
    {member: the engine that ran it}."""
    from .fuse import fuse, softmax
    from .health import compact_features

    outputs = committee.predict_outputs(images, index=index, progress=progress)  # (n, M, V, C)
    out = {
        "fused": fuse(outputs, committee.weights_, mode=committee.config.fusion),
        "member_probs": softmax(outputs.astype(np.float64).mean(axis=2)).astype(np.float32),
    }
    if health_mean is not None:
        out["features"] = compact_features(committee.health_features(np.asarray(images)), health_mean)[0]
    out["engines"] = dict(getattr(committee, "engines_", {}))  # {member: engine that ran it}
    return out


HEAD_COPIES = 2.0  # a head fitted in memory holds its training rows as read (float16) and as float32, and a little more


def head_bytes(rows: int, features_shape: tuple) -> int:
    """What a head on `rows` images of features (N, V, D) holds when fitted from rows in memory."""
    return int(rows * int(np.prod(features_shape[1:])) * 4 * HEAD_COPIES)


def head_in_memory(rows: int, features_shape: tuple, budget: int) -> bool:
    """Whether a head on `rows` images of features (N, V, D) is fitted from rows held in memory (within
    `budget` bytes) rather than read from the features in pieces."""
    return head_bytes(rows, features_shape) <= budget


def head_job(*, member: MemberConfig, num_classes: int, features, idx: np.ndarray, labels: np.ndarray,
             init: tuple[np.ndarray, np.ndarray] | None, budget: int, progress: Progress = QUIET) -> dict:
    """A frozen member's logistic head on the TTA features (N, V, D) of images `idx` with `labels`,
    from `init` (a head to start L-BFGS from) or zero: {"W": (C, D), "b": (C,), "stats": L-BFGS
    iterations and loss evaluations}. `features` is an arrays.NpyFile (this machine) or an array (Ray's
    object store); the training rows are held in memory when they fit `budget`, else read in pieces.
    torch runs the fit on the member's `cpus` threads whichever executor runs the job: the sums of the
    loss and gradient then add up in the same order, so a head is the same wherever it is fitted."""
    import torch

    from .arrays import rows_per_piece
    from .training import fit_view_head, fit_view_head_chunked

    stats: dict = {}
    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, int(member.cpus)))
    try:
        if head_in_memory(len(idx), features.shape, budget):
            W, b = fit_view_head(features[idx], labels, num_classes, member, stats=stats, init=init)
        else:
            per_image = int(np.prod(features.shape[1:])) * 4
            W, b = fit_view_head_chunked(features, idx, labels, num_classes, member, stats=stats, init=init,
                                         chunk_images=rows_per_piece(budget, per_image))
    finally:
        torch.set_num_threads(threads)
    return {"W": np.asarray(W, dtype=np.float32), "b": np.asarray(b, dtype=np.float32), "stats": stats}
