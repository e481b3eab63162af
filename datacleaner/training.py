"""The one training loop for one member.  [torch]

Images come from the decoded cache (uint8 (N, S, S, 3)); each batch is augmented
with the member's seeded albumentations pipeline, reseeded per (epoch, batch) so
the result does not depend on how many loader workers run.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load as load_bytes
from safetensors.torch import load_file, save

from .augment import to_model_input, train_transform
from .config import AugmentConfig, MemberConfig
from .errors import DataCleanerError
from .models import MemberLoss, Preprocess, lr_factor, make_optimizer
from .progress import Progress
from .tables import write_bytes_atomic


def batches_per_epoch(n: int, batch_size: int) -> int:
    """Optimizer steps per epoch over n images: a last partial batch counts if it holds >= 2
    images (BatchNorm needs two)."""
    bs = min(batch_size, n)
    return max(1, n // bs + (1 if n % bs >= 2 else 0))


def loader_workers(device: torch.device) -> int:
    """Augmentation workers: none on the CPU (the cores are busy training), several on a GPU."""
    return 0 if device.type == "cpu" else min(8, os.cpu_count() or 1)


def state_bytes(model: torch.nn.Module, **metadata: str) -> bytes:
    """The model's weights as safetensors bytes."""
    return save({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, metadata=metadata or None)


class AugmentedBatches(torch.utils.data.Dataset):
    """Batch b of one epoch: (uint8 (B, size, size, 3), int64 (B,)) with seeded augmentation."""

    def __init__(self, images, labels, order: np.ndarray, batch_size: int, aug: AugmentConfig, size: int, seed: int):
        self.images, self.labels, self.order = images, labels, order
        self.batch_size, self.seed = batch_size, seed
        self.transform = train_transform(aug, size, seed)
        self.n_batches = batches_per_epoch(len(order), batch_size)

    def __len__(self) -> int:
        return self.n_batches

    def __getitem__(self, b: int):
        idx = np.sort(self.order[b * self.batch_size : (b + 1) * self.batch_size])  # sorted: cache locality
        self.transform.set_random_seed(self.seed * 100003 + b)
        batch = np.stack([self.transform(image=self.images[i])["image"] for i in idx])
        return torch.from_numpy(batch), torch.from_numpy(self.labels[idx])


def compiled(model: torch.nn.Module, device: torch.device):
    """torch.compile(model) on CUDA; the model itself elsewhere (compiling pays off only on long GPU runs)."""
    return torch.compile(model) if device.type == "cuda" else model


def autocast(device: torch.device, enabled: bool):
    if device.type == "cuda" and enabled:
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.autocast("cuda", dtype=dtype)
    return contextlib.nullcontext()


def train_member(
    model: torch.nn.Module,
    images: np.ndarray,
    labels: np.ndarray,
    train_idx: np.ndarray,
    member: MemberConfig,
    aug: AugmentConfig,
    prep: Preprocess,
    *,
    device: torch.device,
    seed: int,
    workers: int = 0,
    on_epoch: Callable[[int, float], None] | None = None,
    on_step: Callable[[int, float], None] | None = None,
    compile: bool = False,
) -> torch.nn.Module:
    """Train `model` in place on images[train_idx] and return it in eval mode (with `compile`,
    the steps run through torch.compile on CUDA).

    images: (N, S, S, 3) uint8; labels: (N,) int64. Seeds torch and the augmentation
    from `seed` alone, so the same member and round train the same whatever ran before.
    """
    model.to(device).to(memory_format=torch.channels_last)
    optimizer = make_optimizer(model, member)
    _train_epochs(model, optimizer, images, labels, train_idx, member, aug, prep, range(member.epochs), device=device,
                  seed=seed, workers=workers, on_epoch=on_epoch, on_step=on_step, compile=compile)
    return model.eval()


def train_cycle(
    model: torch.nn.Module, state: bytes | None, images: np.ndarray, labels: np.ndarray, train_idx: np.ndarray,
    member: MemberConfig, aug: AugmentConfig, prep: Preprocess, cycle: int, *, device: torch.device, seed: int,
    workers: int = 0, on_epoch: Callable[[int, float], None] | None = None,
    on_step: Callable[[int, float], None] | None = None, compile: bool = False,
) -> bytes:
    """Train learning-rate cycle `cycle` (1-based) of a cosine_restarts member, starting from `state`
    (training_state bytes at the end of the cycle before; None for cycle 1), and return the training
    state at its end. Every epoch is seeded by (seed, epoch) alone, so cycles trained one by one, in
    different processes, give the same weights as one uninterrupted training."""
    model.to(device).to(memory_format=torch.channels_last)
    optimizer = make_optimizer(model, member)
    if state is not None:
        load_training_state(model, optimizer, state)
    length = member.cycle_epochs
    epochs = range((cycle - 1) * length, cycle * length)
    _train_epochs(model, optimizer, images, labels, train_idx, member, aug, prep, epochs, device=device, seed=seed,
                  workers=workers, on_epoch=on_epoch, on_step=on_step, compile=compile)
    return training_state(model.eval(), optimizer, arch=member.arch, cycle=str(cycle))


def training_state(model: torch.nn.Module, optimizer: torch.optim.Optimizer, **metadata: str) -> bytes:
    """Weights and optimizer state as safetensors bytes (tensors 'model.*' and 'optim.<param>.<name>',
    the parameter groups as JSON): what resuming a training needs, loadable without executing code."""
    sd = optimizer.state_dict()
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    other = {}
    for pid, st in sd["state"].items():
        for name, v in st.items():
            if isinstance(v, torch.Tensor):
                tensors[f"optim.{pid}.{name}"] = v.detach().cpu().contiguous()
            else:
                other[f"{pid}.{name}"] = v
    meta = {**metadata, "param_groups": json.dumps(sd["param_groups"]), "optim_other": json.dumps(other)}
    return save(tensors, metadata=meta)


def load_training_state(model: torch.nn.Module, optimizer: torch.optim.Optimizer, data: bytes) -> None:
    """Restore what `training_state` saved into `model` and `optimizer`."""
    tensors = load_bytes(data)
    meta = safetensors_metadata(data)
    groups, other = json.loads(meta["param_groups"]), json.loads(meta["optim_other"])
    model.load_state_dict({k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")})
    state: dict[int, dict] = {}
    for k, v in tensors.items():
        if k.startswith("optim."):
            pid, name = k[len("optim."):].split(".", 1)
            state.setdefault(int(pid), {})[name] = v
    for k, v in other.items():
        pid, name = k.split(".", 1)
        state.setdefault(int(pid), {})[name] = v
    optimizer.load_state_dict({"state": state, "param_groups": groups})


def safetensors_metadata(data: bytes) -> dict[str, str]:
    """The metadata of safetensors bytes (the header is 8 bytes of length, then JSON)."""
    n = int.from_bytes(data[:8], "little")
    return json.loads(data[8 : 8 + n]).get("__metadata__", {})


def state_weights(data: bytes, **metadata: str) -> bytes:
    """The model's weights alone (as state_bytes writes them) from training_state bytes."""
    tensors = {k[len("model."):]: v for k, v in load_bytes(data).items() if k.startswith("model.")}
    return save(tensors, metadata=metadata or None)


def _train_epochs(
    model, optimizer, images, labels, train_idx, member: MemberConfig, aug: AugmentConfig, prep: Preprocess,
    epochs: range, *, device: torch.device, seed: int, workers: int, on_epoch, on_step, compile: bool,
) -> None:
    """Epochs `epochs` of the member's training; the lr follows its schedule by global step, and each
    epoch's shuffling, augmentation and dropout are seeded by (seed, epoch)."""
    model.train()
    loss_fn = MemberLoss(label_smoothing=member.label_smoothing, focal_gamma=member.focal_gamma, flooding=member.flooding)
    bs = min(member.batch_size, len(train_idx))
    steps_per_epoch = batches_per_epoch(len(train_idx), bs)
    total = steps_per_epoch * member.epochs
    warmup = int(round(member.warmup_epochs * steps_per_epoch))
    cycle = member.cycle_epochs * steps_per_epoch
    use_scaler = device.type == "cuda" and member.amp and not torch.cuda.is_bf16_supported()
    scaler = torch.amp.GradScaler("cuda") if use_scaler else None
    mean, std = prep.tensors(device)
    labels = np.asarray(labels, dtype=np.int64)
    net = compiled(model, device) if compile else model
    for epoch in epochs:
        torch.manual_seed(seed * 1000 + epoch)
        order = np.random.default_rng([seed, epoch]).permutation(train_idx)
        batches = AugmentedBatches(images, labels, order, bs, aug, prep.size, seed=seed * 1000 + epoch)
        loader = torch.utils.data.DataLoader(
            batches, batch_size=None, shuffle=False, num_workers=workers, pin_memory=device.type == "cuda",
            persistent_workers=False,
        )
        total_loss, seen = 0.0, 0
        for b, (x_uint8, y) in enumerate(loader):
            step = epoch * steps_per_epoch + b
            for group in optimizer.param_groups:
                group["lr"] = member.lr * lr_factor(step, total=total, warmup=warmup, schedule=member.schedule, cycle=cycle)
            x = to_model_input(x_uint8.to(device, non_blocking=True), mean, std)
            y = y.to(device, non_blocking=True)
            with autocast(device, member.amp):
                loss = loss_fn(net(x), y)
            optimizer.zero_grad(set_to_none=True)
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
            else:
                loss.backward()
                optimizer.step()
            if not math.isfinite(loss.item()):
                raise FloatingPointError(f"loss became {loss.item()} in epoch {epoch + 1}; lower the lr")
            total_loss += loss.item() * len(y)
            seen += len(y)
            if on_step is not None:
                on_step(epoch, loss.item())
        if on_epoch is not None:
            on_epoch(epoch, total_loss / max(1, seen))


def step_reporter(bar, member: MemberConfig) -> Callable[[int, float], None]:
    """on_step for a training's progress bar: one step done, its epoch and loss shown."""
    def on_step(epoch: int, loss: float) -> None:
        bar.update(1)
        bar.set_postfix(epoch=f"{epoch + 1}/{member.epochs}", loss=f"{loss:.3f}", refresh=False)

    return on_step


def train_or_load(
    model: torch.nn.Module, weights_path: Path | None, images: np.ndarray, labels: np.ndarray, idx: np.ndarray,
    member: MemberConfig, aug: AugmentConfig, prep: Preprocess, *, device: torch.device, seed: int,
    progress: Progress, desc: str, metadata: dict[str, str] | None = None, compile: bool = False,
) -> bool:
    """Load `model`'s weights from `weights_path` if they are there; else train it on images[idx]
    with a progress bar and write the weights there (atomically). Returns True if it trained."""
    if weights_path is not None and weights_path.is_file():
        model.load_state_dict(load_file(weights_path))
        progress.debug(f"{desc}: loaded {weights_path.name}")
        return False
    steps = member.epochs * batches_per_epoch(len(idx), member.batch_size)
    with progress.bar(steps, desc, unit="step") as bar:
        on_step = step_reporter(bar, member)

        def on_epoch(epoch, mean_loss):
            progress.debug(f"{desc} epoch {epoch + 1}/{member.epochs} loss {mean_loss:.4f}")

        train_member(
            model, images, labels, idx, member, aug, prep, device=device, seed=seed,
            workers=loader_workers(device), on_step=on_step, on_epoch=on_epoch, compile=compile,
        )
    if weights_path is not None:
        write_bytes_atomic(weights_path, state_bytes(model, arch=member.arch, **(metadata or {})))
    return True


class Cycles:
    """Where one training of a snapshot member (cosine_restarts with `snapshots`) stands on disk: the
    training state at the end of its latest finished cycle (`state_path(c)`, only the latest kept) and
    the weights of each snapshot cycle (`weights_path(c)`). A killed training resumes from the latest
    state: finished cycles are never trained again."""

    def __init__(self, member: MemberConfig, state_path: Callable[[int], Path], weights_path: Callable[[int], Path]):
        self.member, self.state_path, self.weights_path = member, state_path, weights_path

    @property
    def done(self) -> bool:
        return all(self.weights_path(c).is_file() for c in self.member.snapshot_cycles())

    def next(self) -> tuple[int, Path | None]:
        """(the cycle to train next, 1-based; the file of the training state to start it from, None for cycle 1)."""
        finished = [c for c in range(self.member.cycles, 0, -1) if self.state_path(c).is_file()]
        return (finished[0] + 1, self.state_path(finished[0])) if finished else (1, None)

    def record(self, cycle: int, state: bytes) -> None:
        """Save cycle `cycle`'s end: its snapshot weights when it is a snapshot cycle, the training
        state (replacing the previous cycle's) until the last cycle is done."""
        if cycle in self.member.snapshot_cycles():
            write_bytes_atomic(self.weights_path(cycle), state_weights(state, arch=self.member.arch, cycle=str(cycle)))
        if cycle < self.member.cycles:
            write_bytes_atomic(self.state_path(cycle), state)
        for c in range(1, cycle + (cycle == self.member.cycles)):
            self.state_path(c).unlink(missing_ok=True)


HEAD_MAX_ITER = 200  # L-BFGS iterations for a frozen member's logistic head


def fit_linear_head(
    features: np.ndarray, labels: np.ndarray, num_classes: int, *, l2: float, label_smoothing: float = 0.0,
    stats: dict | None = None, init: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Multinomial logistic regression: (W (C, D), b (C,)) with logits = features @ W.T + b.

    features: (n, D) float; labels: (n,) int. Features are standardised inside and the
    scaling folded back into W and b, so the head acts on raw features. Full-batch L-BFGS
    from zero weights, or from `init` (a head (W, b) on raw features, e.g. fitted on nearly the
    same images: the same optimum, reached in about half the evaluations): the same data and
    start always give the same head. fit_linear_head_chunked fits the same head from chunks
    read one at a time.
    """
    z = torch.from_numpy(np.array(features, dtype=np.float32))  # (n, D), our own copy
    y = torch.from_numpy(np.asarray(labels, dtype=np.int64))
    mu, sd = z.mean(0), z.std(0).clamp_min(1e-6)  # (D,)
    z.sub_(mu).div_(sd)  # standardised in place: one copy of the features in memory
    loss_fn = MemberLoss(label_smoothing=label_smoothing)
    return _lbfgs_head(lambda W, b: loss_fn(z @ W.T + b, y), z.shape[1], num_classes, l2, mu, sd, stats, init)


def _lbfgs_head(data_loss, D: int, C: int, l2: float, mu: torch.Tensor, sd: torch.Tensor, stats: dict | None = None,
                init: tuple[np.ndarray, np.ndarray] | None = None):
    """L-BFGS from zero (or from `init`, a head on raw features) on data_loss(W, b) + l2/2 |W|^2 (data_loss
    backpropagates itself, in parts if it likes, and returns the loss value), W and b acting on
    standardised features; returned on raw ones. `stats`, if given, receives the iterations and loss
    evaluations it took."""
    if init is None:
        W, b = torch.zeros(C, D), torch.zeros(C)
    else:  # raw -> standardised: W_std = W_raw * sd, b_std = b_raw + W_raw @ mu
        W_raw, b_raw = (torch.from_numpy(np.asarray(a, dtype=np.float32)) for a in init)
        W, b = W_raw * sd, b_raw + W_raw @ mu
    W, b = W.clone().requires_grad_(True), b.clone().requires_grad_(True)
    opt = torch.optim.LBFGS([W, b], lr=1.0, max_iter=HEAD_MAX_ITER, history_size=20, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = data_loss(W, b)
        if loss.requires_grad:  # computed in one piece: not backpropagated yet
            loss.backward()
        penalty = 0.5 * l2 * (W * W).sum()
        penalty.backward()
        return loss.detach() + penalty.detach()

    with torch.enable_grad():
        opt.step(closure)
    if stats is not None:
        state = opt.state[W]
        stats.update(iterations=int(state.get("n_iter", 0)), evaluations=int(state.get("func_evals", 0)))
    W_raw = (W / sd).detach()  # (C, D)
    b_raw = (b - W_raw @ mu).detach()
    return W_raw.numpy(), b_raw.numpy()


def fit_linear_head_chunked(
    chunks: Callable[[], Iterable[tuple[np.ndarray, np.ndarray]]], num_classes: int, *, l2: float,
    label_smoothing: float = 0.0, stats: dict | None = None, init: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """fit_linear_head's head from data too large to hold: chunks() yields (features (m, D), labels (m,))
    pieces of the same n rows every time it is called (e.g. read from a memory-mapped file). The mean,
    standard deviation, loss and gradient are accumulated piece by piece, so memory holds one piece;
    each L-BFGS evaluation reads the data once. Equal to the full-batch head up to float rounding."""
    n, mean, m2 = 0, None, None  # Chan et al.'s pairwise merge of per-piece mean and squared deviations
    for x, _ in chunks():
        x = np.asarray(x, dtype=np.float64)  # one pass: the mean and spread exact to float64
        k, mk = len(x), x.mean(0)
        if mean is None:
            n, mean, m2 = k, mk, ((x - mk) ** 2).sum(0)
            continue
        delta, total = mk - mean, n + k
        m2 = m2 + ((x - mk) ** 2).sum(0) + delta**2 * n * k / total
        mean, n = mean + delta * k / total, total
    if mean is None:
        raise ValueError("no training rows for the head")
    mu = torch.from_numpy(mean.astype(np.float32))
    sd = torch.from_numpy(np.sqrt(m2 / max(n - 1, 1)).astype(np.float32)).clamp_min(1e-6)
    loss_fn = MemberLoss(label_smoothing=label_smoothing)

    buffer = torch.empty(0)  # float32 rows, reused by every piece: converting into it allocates nothing

    def data_loss(W, b):  # mean loss over all n rows, its gradient accumulated piece by piece
        nonlocal buffer
        total = torch.zeros(())
        for x, y in chunks():
            if buffer.shape[0] < len(x):
                buffer = torch.empty(len(x), len(mu))
            z = buffer[: len(x)]
            z.copy_(torch.from_numpy(np.ascontiguousarray(x)))  # float16 or float32 rows, as read
            Ws = W / sd  # the standardisation folded into the weights: pieces stay as read
            loss = loss_fn(z @ Ws.T + (b - Ws @ mu), torch.from_numpy(np.asarray(y, dtype=np.int64))) * (len(y) / n)
            loss.backward()
            total += loss.detach()
        return total

    return _lbfgs_head(data_loss, len(mu), num_classes, l2, mu, sd, stats, init)


def fit_view_head(features: np.ndarray, labels: np.ndarray, num_classes: int, member: MemberConfig,
                  stats: dict | None = None, init: tuple[np.ndarray, np.ndarray] | None = None):
    """A frozen member's head from TTA features (n, V, D) of its training images, labels (n,):
    every view is a sample. Returns (W (C, D), b (C,)); `init`: a head to start from."""
    n, V, D = features.shape
    return fit_linear_head(
        np.asarray(features).reshape(n * V, D), np.repeat(np.asarray(labels), V), num_classes,
        l2=member.head_l2, label_smoothing=member.label_smoothing, stats=stats, init=init,
    )


def fit_view_head_chunked(features, idx: np.ndarray, labels: np.ndarray, num_classes: int, member: MemberConfig,
                          chunk_images: int, stats: dict | None = None, init: tuple[np.ndarray, np.ndarray] | None = None):
    """fit_view_head on rows `idx` of TTA features (N, V, D) too large to hold (e.g. an arrays.NpyFile):
    read `chunk_images` images at a time; `labels` (len(idx),)."""
    idx, labels = np.asarray(idx), np.asarray(labels)

    def chunks():
        for s in range(0, len(idx), chunk_images):
            x = np.asarray(features[idx[s : s + chunk_images]])  # (m, V, D) as stored (float16)
            yield x.reshape(-1, x.shape[2]), np.repeat(labels[s : s + chunk_images], x.shape[1])

    return fit_linear_head_chunked(chunks, num_classes, l2=member.head_l2, label_smoothing=member.label_smoothing,
                                   stats=stats, init=init)


def set_classifier(model: torch.nn.Module, weight: np.ndarray, bias: np.ndarray) -> torch.nn.Module:
    """Copy a fitted linear head into the timm model's classifier (a Linear on the pre-logits)."""
    head = model.get_classifier()
    if not isinstance(head, torch.nn.Linear) or tuple(head.weight.shape) != weight.shape:
        raise DataCleanerError(
            f"{type(model).__name__}: its classifier is not one Linear layer of shape {weight.shape}, so it cannot be "
            "a frozen member; set frozen: false"
        )
    with torch.no_grad():
        head.weight.copy_(torch.from_numpy(weight))
        head.bias.copy_(torch.from_numpy(bias))
    return model
