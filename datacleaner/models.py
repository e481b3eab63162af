"""Committee members: timm model creation, preprocessing from the model's data config,
losses (label smoothing, focal, flooding) and learning-rate schedules.  [torch]"""

from __future__ import annotations

import math
from dataclasses import dataclass

import timm
import torch
import torch.nn.functional as F
from timm.data import resolve_data_config

from .config import MemberConfig
from .errors import DataCleanerError
from .weights import MISSING


def resolve_device(name: str) -> torch.device:
    """'auto' picks CUDA, then Apple MPS, then the CPU."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise DataCleanerError("device 'cuda' asked for, but torch sees no CUDA GPU; use --device cpu or auto")
    return torch.device(name)


def create_member_model(
    member: MemberConfig, num_classes: int, *, load_pretrained: bool = True, seed: int | None = None,
    pretrained_path: str | None = None,
) -> torch.nn.Module:
    """timm.create_model for a member, with a new classifier for `num_classes`. A member with
    `pretrained: true` or `pretrained_file` loads `pretrained_path` (found by weights.resolve_weights:
    a local file with timm key names), or through timm's hub when that is None. With
    load_pretrained=False the architecture is built bare (weights come from a cache).
    `seed` seeds the initialisation of new layers."""
    if seed is not None:
        torch.manual_seed(seed)
    if not timm.is_model(member.arch.split(".")[0]):
        close = timm.list_models(f"*{member.arch.split('.')[0][:6]}*")[:8]
        raise DataCleanerError(
            f"member '{member.label}': '{member.arch}' is not a timm architecture"
            + (f"; close names: {', '.join(close)}" if close else "")
        )
    kwargs = dict(num_classes=num_classes, drop_rate=member.drop_rate)
    if member.drop_path_rate:
        kwargs["drop_path_rate"] = member.drop_path_rate
    pretrained = load_pretrained and (member.pretrained or bool(member.pretrained_file))
    if pretrained and pretrained_path and pretrained_path.startswith(MISSING):
        raise DataCleanerError(
            f"member '{member.label}' needs its pretrained weights for work this run has not cached yet: "
            f"{pretrained_path.split(':', 2)[2]}"
        )
    source = pretrained_path or member.pretrained_file
    if pretrained and source:
        kwargs["pretrained_cfg_overlay"] = dict(file=str(source))
    try:
        return timm.create_model(member.arch, pretrained=pretrained, **kwargs)
    except TypeError as exc:  # an architecture without drop-path
        raise DataCleanerError(f"member '{member.label}': {member.arch} does not accept {exc}") from None
    except Exception as exc:  # hub errors, bad files (safetensors, torch.load), key mismatches
        if not pretrained:
            raise
        source = source or "the timm hub"
        raise DataCleanerError(
            f"member '{member.label}': could not load pretrained weights for {member.arch} from {source} "
            f"({str(exc).splitlines()[0][:200]}); check the file, or set pretrained: false"
        ) from None


@dataclass(frozen=True)
class Preprocess:
    """What a member's input looks like: square side and normalisation."""

    size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    def tensors(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.tensor(self.mean, device=device), torch.tensor(self.std, device=device)


def member_preprocess(member: MemberConfig, model: torch.nn.Module | None = None) -> Preprocess:
    """Input size, mean and std from the model's timm data config unless the member overrides them."""
    if model is None:
        model = timm.create_model(member.arch, pretrained=False, num_classes=2)
    data_cfg = resolve_data_config(model=model)
    size = member.img_size or int(data_cfg["input_size"][-1])
    mean = tuple(float(x) for x in (member.mean or data_cfg["mean"]))
    std = tuple(float(x) for x in (member.std or data_cfg["std"]))
    return Preprocess(size=size, mean=mean, std=std)


class MemberLoss(torch.nn.Module):
    """Cross-entropy with optional label smoothing (eps), focal term (gamma) and flooding (b)."""

    def __init__(self, *, label_smoothing: float = 0.0, focal_gamma: float = 0.0, flooding: float = 0.0):
        super().__init__()
        self.eps, self.gamma, self.flood = label_smoothing, focal_gamma, flooding

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        logp = F.log_softmax(logits.float(), dim=1)  # (B, C)
        C = logits.shape[1]
        q = torch.full_like(logp, self.eps / C)
        q.scatter_(1, target[:, None], 1.0 - self.eps + self.eps / C)
        per_image = -(q * logp).sum(dim=1)  # (B,)
        if self.gamma > 0:
            p_true = logp.gather(1, target[:, None]).squeeze(1).exp()
            per_image = (1.0 - p_true).pow(self.gamma) * per_image
        loss = per_image.mean()
        if self.flood > 0:
            loss = (loss - self.flood).abs() + self.flood
        return loss


def lr_factor(step: int, *, total: int, warmup: int, schedule: str, cycle: int) -> float:
    """Multiplier of the base lr at optimizer step `step`: linear warmup from 1%, then cosine to 0 at
    `total`, cosine with warm restarts, or constant. Restart cycles of `cycle` steps start at step 0
    (the first one's cosine after the warmup), so each ends at an epoch boundary with the lr near 0:
    where a snapshot is taken."""
    if step < warmup:
        return 0.01 + 0.99 * step / max(1, warmup)
    if schedule == "constant":
        return 1.0
    if schedule == "cosine_restarts" and 0 < cycle < total:
        k, t = divmod(step, cycle)
        start = warmup if k == 0 else 0
        t, span = t - start, max(1, cycle - start)
    else:
        t, span = step - warmup, max(1, total - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, t / span)))


def make_optimizer(model: torch.nn.Module, member: MemberConfig) -> torch.optim.Optimizer:
    """SGD with momentum or AdamW; no weight decay on biases and norm layers."""
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (no_decay if p.ndim <= 1 else decay).append(p)
    groups = [{"params": decay, "weight_decay": member.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if member.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=member.lr, momentum=member.momentum, nesterov=True)
    return torch.optim.AdamW(groups, lr=member.lr)
