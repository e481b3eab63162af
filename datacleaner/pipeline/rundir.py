"""The run directory: where every output and cached piece of work lives, named by a hash of what
determines it, and the atomic writes that put them there.  [I/O]

Layout of a run directory (`--out`):

    config.yaml        resolved config (rewritten by rescore)
    run.json           data fingerprint, classes, cache size: what cached files belong to
    manifest.csv       every image: path, label, part, unreadable reason
    cache/             decoded images, uint8 (N, S, S, 3), decoded once per run; pixel facts for the health checks
    members/           member weights per (round, member), safetensors
    features/          frozen members: backbone TTA features of every image (N, V, D) float16
                       (computed in shards under <name>.parts/, joined when all are done); health features
    heads/             frozen members' fitted heads per (round, member)
    logits/            TTA logits per (round, member): (n_judged, V, C) float32 (r<k>p2-...: pass 2)
    second_pass.json   passes: 2 only: the images pass 1 flagged, left out of pass 2's training
    scores.csv         every image;  review.csv  the rows to decide;  health.csv  data-health findings;  summary.json
    .datacleaner.lock  held while a command works here (lock.py): one command at a time

Every cached file is named by a hash of what determines it, so a re-run continues from whatever
finished, and changing only tau / T / fusion re-scores without training.
"""

from __future__ import annotations

import io
import json
import os
import shutil
from dataclasses import asdict
from pathlib import Path

import numpy as np

from .. import health
from ..arrays import NpyWriter
from ..config import JUDGING_ONLY, CleanConfig, Judge, MemberConfig
from ..keys import digest
from ..tables import write_bytes_atomic, write_text_atomic
from ..training import Cycles


class RunDir:
    def __init__(self, path: str | Path):
        self.path = Path(path)

    def file(self, *parts: str) -> Path:
        return self.path.joinpath(*parts)

    def read_json(self, name: str) -> dict | None:
        p = self.file(name)
        return json.loads(p.read_text()) if p.is_file() else None

    def write_json(self, name: str, obj) -> None:
        write_text_atomic(self.file(name), json.dumps(obj, indent=2, default=str) + "\n")

    # keys of cached work -------------------------------------------------------------
    def training_key(self, cfg: CleanConfig, member: MemberConfig, round_: int, info: dict, held_out: str | None = None) -> str:
        """What a member's training depends on (not its fusion weight, name or how many snapshots judge)."""
        recipe = {k: v for k, v in asdict(member).items() if k not in ("weight", "name", *JUDGING_ONLY)}
        parts = [recipe, asdict(cfg.augment), cfg.scheme, cfg.folds, cfg.seed, round_, info["fingerprint"], info["cache_size"],
                 self._weights(info, member)]
        return digest(parts + ([held_out] if held_out else []))

    @staticmethod
    def _weights(info: dict, member: MemberConfig) -> str | None:
        """What the member's pretrained weights are (weights.weights_identity), None when it has none."""
        return info.get("pretrained", {}).get(member.label)

    @staticmethod
    def _prefix(round_: int, judge: Judge, held_out: str | None) -> str:
        return f"r{round_}{'p2' if held_out else ''}-{judge.label}"

    def weights_path(self, cfg, judge: Judge, round_, info, held_out: str | None = None) -> Path:
        """A judge's weights in a round: a member's final weights, or one snapshot's (<name>@c<cycle>)."""
        key = self.training_key(cfg, judge.member, round_, info, held_out)
        return self.file("members", f"{self._prefix(round_, judge, held_out)}-{key}.safetensors")

    def state_path(self, cfg, member: MemberConfig, round_, info, held_out: str | None, cycle: int) -> Path:
        """A snapshot member's training state (weights and optimizer) at the end of `cycle`: where it resumes."""
        key = self.training_key(cfg, member, round_, info, held_out)
        return self.file("members", f"{self._prefix(round_, Judge(member), held_out)}-{key}.c{cycle}.state")

    def cycles(self, cfg, member: MemberConfig, round_, info, held_out: str | None) -> Cycles:
        return Cycles(member, lambda c: self.state_path(cfg, member, round_, info, held_out, c),
                      lambda c: self.weights_path(cfg, Judge(member, c), round_, info, held_out))

    def features_path(self, cfg, member, info) -> Path:
        """A frozen member's TTA features of every image: what the backbone and the views depend on."""
        backbone = {k: getattr(member, k) for k in ("arch", "pretrained", "pretrained_file", "img_size", "mean", "std")}
        augmented = cfg.tta.mode == "augment"  # only seeded, augmented views depend on the augmentation and seed
        views = [asdict(cfg.tta), asdict(cfg.augment) if augmented else None, cfg.seed if augmented else None]
        key = digest([backbone, views, info["fingerprint"], info["cache_size"], self._weights(info, member)])
        return self.file("features", f"{member.label}-{key}.npy")

    def health_facts_path(self, size: int, fingerprint: str) -> Path:
        """Pixel facts for the health checks (health_cache) of the decoded cache of `size` px."""
        return self.file("cache", f"health-{size}-{fingerprint}.npz")

    def health_features_path(self, cfg, info) -> Path:
        """Compact features (health.compact_features) of every image, for near duplicates and outliers:
        from the first pretrained member's backbone as pretrained (never fine-tuned: fine-tuning bunches
        a class together), else, and for grayscale data (run.json's health_features), from the pixels
        (health.pixel_features)."""
        m = health_member(cfg, info)
        if m is None:
            source = ["pixels", info["cache_size"], info["fingerprint"]]
        elif m.frozen:
            source = self.features_path(cfg, m, info).name
        else:
            backbone = {k: getattr(m, k) for k in ("arch", "pretrained", "pretrained_file", "img_size", "mean", "std")}
            source = [backbone, info["fingerprint"], info["cache_size"], self._weights(info, m)]
        return self.file("features", f"health-{digest([source, health.FEATURE_DIM])}.npz")

    def head_path(self, cfg, member: MemberConfig, round_, info, held_out: str | None = None) -> Path:
        """A frozen member's fitted head (W, b) in a round: where later heads of the run start from."""
        return self.file("heads", f"{self._prefix(round_, Judge(member), held_out)}-{self.training_key(cfg, member, round_, info, held_out)}.npz")

    def logits_path(self, cfg, judge: Judge, round_, info, held_out: str | None = None) -> Path:
        """TTA logits of (round, judge); `held_out` keys pass 2 by the images it trained without."""
        training = self.training_key(cfg, judge.member, round_, info, held_out)
        key = digest([training, asdict(cfg.tta), asdict(cfg.augment) if cfg.tta.mode == "augment" else None])
        return self.file("logits", f"{self._prefix(round_, judge, held_out)}-{key}.npy")


def health_member(cfg: CleanConfig, info: dict | None = None) -> MemberConfig | None:
    """The member whose pretrained backbone gives the health checks their features: the first frozen one
    (its features are computed anyway), else the first pretrained one; None when none is pretrained or
    the run's data is grayscale (run.json health_features "pixels": a photo backbone puts every writer's
    2 close to every other's, so look-alike scans paired as near copies)."""
    if info is not None and info.get("health_features") == "pixels":
        return None
    pretrained = [m for m in cfg.members if m.pretrained or m.pretrained_file]
    return next((m for m in pretrained if m.frozen), pretrained[0] if pretrained else None)


def save_array(path: Path, array: np.ndarray) -> None:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    write_bytes_atomic(path, buf.getvalue())


def shard_spans(n: int, shard: int) -> list[tuple[int, int]]:
    """(start, stop) of each job's rows when n rows go in shards of `shard`."""
    return [(s, min(n, s + shard)) for s in range(0, n, shard)]


def part_path(parts: Path, span: tuple[int, int]) -> Path:
    """Where the shard of rows span[0]..span[1] is saved as it arrives (so a killed run resumes there)."""
    return parts / "{}-{}.npy".format(*span)


def join_parts(parts: Path, spans: list[tuple[int, int]], path: Path, dtype) -> None:
    """The shards saved under `parts` written in order into one .npy at `path`, a shard in memory at a time
    (to a temporary name, then renamed); `parts` is removed after."""
    shape = np.load(part_path(parts, spans[0]), mmap_mode="r").shape[1:] if spans else (1, 1)
    tmp = path.with_suffix(".partial.npy")
    with NpyWriter(tmp, (spans[-1][1] if spans else 0, *shape), dtype, block_rows=1) as out:
        for span in spans:
            out.write(span[0], np.load(part_path(parts, span)))
    os.replace(tmp, path)
    shutil.rmtree(parts)
