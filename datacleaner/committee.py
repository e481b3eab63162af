"""Committee: N members trained on a whole labeled dataset, saved as a bundle, loaded without
executing code (safetensors + JSON), and used to judge new images.  [torch]

Follows scikit-learn's conventions by duck typing: `__init__` stores the config, `fit`
trains and returns self, fitted state ends in `_`.

Bundle layout (`COMMITTEE_DIR`):
    committee.json   format, class names in order, members (arch, weight, preprocessing,
                     weights file), TTA and augmentation settings, fusion mode, cache size
    config.yaml      the resolved config it was trained with
    members/*.safetensors
    labeled.npz      paths, labels, pixel digests, perceptual hashes and compact features of the
                     labeled images: what `select` recognises them by in a pool (train/pool leakage)
"""

from __future__ import annotations

import dataclasses
import io
import json
import shutil
from pathlib import Path
from tempfile import mkdtemp

import numpy as np
from safetensors.torch import load_file

from . import health
from .arrays import GiB, NpyFile, NpyWriter, memory_budget, rows_per_piece
from .config import ENGINES, JUDGING_ONLY, AugmentConfig, CleanConfig, Judge, MemberConfig, TTAConfig, dump_config, validate
from .dataset import decode_images
from .engines import engine_for
from .errors import DataCleanerError
from .fuse import fuse
from .keys import digest, member_seed
from .models import Preprocess, create_member_model, member_preprocess, resolve_device
from .predict import predict_logits
from .progress import QUIET, Progress
from .tables import write_bytes_atomic, write_text_atomic
from .jobs import train_cycle_job
from .training import Cycles, fit_view_head, fit_view_head_chunked, set_classifier, state_bytes, train_or_load
from .weights import resolve_weights, weights_identity

FORMAT = 1
LABELED = "labeled.npz"  # the labeled images' digests, hashes and compact features (Committee.record_labeled)


class Committee:
    def __init__(self, config: CleanConfig):
        self.config = config

    # fitting -------------------------------------------------------------------------
    def fit(
        self, images: np.ndarray, labels: np.ndarray, classes: list[str], *, idx: np.ndarray | None = None,
        out: str | Path | None = None, data_key: str = "", pretrained: dict[str, str | None] | None = None,
        progress: Progress = QUIET,
    ) -> "Committee":
        """Train every member on images[idx] ((N, S, S, 3) uint8; default: all) with `labels` (N,).
        A member with snapshots gives one judge per snapshot (judges_).

        With `out`, each member's weights (and a snapshot member's state after each cycle) are written
        there as soon as they are done, and weights already there (same recipe, same `data_key`
        identifying the data) are loaded instead of retrained. `pretrained`: {member: weights file}
        from weights.resolve_weights (found here when None).
        """
        cfg = validate(self.config)
        device = resolve_device(cfg.device)
        pretrained = resolve_weights(cfg) if pretrained is None else pretrained
        identity = weights_identity(pretrained)
        self.classes_ = list(classes)
        self.judges_, self.preps_, self.members_ = [], [], []
        idx = np.arange(len(labels)) if idx is None else np.asarray(idx)
        for member in cfg.members:
            prep = member_preprocess(member)
            recipe = {k: v for k, v in dataclasses.asdict(member).items() if k not in JUDGING_ONLY}
            key = digest([recipe, dataclasses.asdict(cfg.augment), cfg.seed, self.classes_, images.shape,
                          idx.tolist(), data_key, identity.get(member.label)])
            seed = member_seed(cfg.seed, -1, member.label)  # round -1: the whole dataset
            if member.snapshots:
                models = self._fit_snapshots(member, prep, images, labels, idx, key, out, seed, pretrained, device, progress)
            else:
                path = Path(out) / "members" / f"{member.label}-{key}.safetensors" if out else None
                model = create_member_model(member, len(classes), load_pretrained=not (path and path.is_file()), seed=seed,
                                            pretrained_path=pretrained.get(member.label))
                if member.frozen and not (path and path.is_file()):
                    self._fit_frozen(model, member, prep, images, labels, idx, device, progress)
                    if path:
                        write_bytes_atomic(path, state_bytes(model, arch=member.arch))
                else:
                    train_or_load(
                        model, path, images, labels, idx, member, cfg.augment, prep, device=device, seed=seed,
                        progress=progress, desc=f"train {member.label}",
                    )
                models = {None: model}
            for cycle, model in models.items():
                self.judges_.append(Judge(member, cycle))
                self.members_.append(model.eval())
                self.preps_.append(prep)
        self.cache_size_ = images.shape[1]
        return self

    def _fit_snapshots(self, member, prep, images, labels, idx, key, out, seed, pretrained, device, progress) -> dict:
        """{cycle: model} of a snapshot member, trained cycle by cycle (jobs.train_cycle_job); with `out`,
        each cycle's end is saved there (training.Cycles), so a re-run resumes after the last finished cycle."""
        files = Path(out or mkdtemp(prefix="datacleaner-cycles-")) / "members"
        cycles = Cycles(member, lambda c: files / f"{member.label}-{key}.c{c}.state",
                        lambda c: files / f"{member.label}@c{c}-{key}.safetensors")
        while not cycles.done:
            cycle, state = cycles.next()
            cycles.record(cycle, train_cycle_job(
                member=member, num_classes=len(self.classes_), images=images, labels=labels, idx=idx, aug=self.config.augment,
                prep=prep, device=str(device), seed=seed, cycle=cycle, state=state and state.read_bytes(), compile=False,
                desc=f"train {member.label} cycle {cycle}/{member.cycles}", pretrained_path=pretrained.get(member.label),
                progress=progress,
            ))
        models = {}
        for cycle in member.snapshot_cycles():
            model = create_member_model(member, len(self.classes_), load_pretrained=False)
            model.load_state_dict(load_file(cycles.weights_path(cycle)))
            models[cycle] = model
        if out is None:
            shutil.rmtree(files.parent, ignore_errors=True)
        return models

    def _fit_frozen(self, model, member, prep, images, labels, idx, device, progress) -> None:
        """A frozen member: the backbone's TTA features of images[idx] train a logistic head,
        which becomes the model's classifier (so the bundle is an ordinary timm model). Features
        larger than the memory budget go to a temporary file in shards and the head is fitted
        from it in pieces."""
        cfg = self.config
        labels = np.asarray(labels)[idx]
        budget, per_image = memory_budget(cfg.memory_gb), cfg.tta.views * model.num_features * 4

        backbone = self._backbone(member, model, prep, device, progress)

        def features(rows, bar):
            return predict_logits(model, images, rows, prep, cfg.tta, cfg.augment, device=device, seed=cfg.seed,
                                  batch_size=cfg.batch_size_predict, amp=member.amp, on_batch=bar.update, features=True,
                                  backbone=backbone)

        with progress.bar(len(idx), f"features {member.label}") as bar:
            if len(idx) * per_image * 1.5 <= budget:
                head = fit_view_head(features(idx, bar), labels, len(self.classes_), member)  # (n, V, D) in memory
            else:
                progress.info(f"memory: {member.label}'s training features ({len(idx) * per_image / GiB:.1f} GB) exceed the "
                              f"memory budget ({budget / GiB:.1f} GB, memory_gb): fitting its head from disk in pieces")
                folder = Path(mkdtemp(prefix="datacleaner-features-"))
                try:
                    shape = (len(idx), cfg.tta.views, model.num_features)
                    with NpyWriter(folder / "features.npy", shape, np.float32, block_rows=1) as out:
                        for s in range(0, len(idx), cfg.shard_images):
                            out.write(s, features(idx[s : s + cfg.shard_images], bar))
                    head = fit_view_head_chunked(NpyFile(folder / "features.npy"), np.arange(len(idx)), labels,
                                                 len(self.classes_), member, chunk_images=rows_per_piece(budget, per_image))
                finally:
                    shutil.rmtree(folder, ignore_errors=True)
        set_classifier(model, *head)

    def _backbone(self, member: MemberConfig, model, prep: Preprocess, device, progress: Progress = QUIET):
        """The member's backbone on ONNX Runtime (engines.py) or None for torch; which ran goes to `engines_`
        and, the first time, to `progress`."""
        backbone, run = engine_for(self.config.engine, member.frozen, device, model, prep.size)
        engines = self.__dict__.setdefault("engines_", {})
        if member.label not in engines:
            progress.info(f"{member.label}: {run.engine}" + (f" ({run.note})" if run.note else ""))
        engines[member.label] = run.engine
        return backbone

    # saving and loading --------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write the bundle (weights as safetensors, everything else as JSON/YAML)."""
        path = Path(path)
        entries = []
        for judge, model, prep in zip(self.judges_, self.members_, self.preps_):
            file = f"members/{judge.label}.safetensors"
            write_bytes_atomic(path / file, state_bytes(model, arch=judge.member.arch))
            entries.append({"member": dataclasses.asdict(judge.member), "cycle": judge.cycle, "file": file,
                            "size": prep.size, "mean": prep.mean, "std": prep.std})
        bundle = {
            "format": FORMAT, "classes": self.classes_, "cache_size": self.cache_size_, "fusion": self.config.fusion,
            "seed": self.config.seed, "tta": dataclasses.asdict(self.config.tta),
            "augment": dataclasses.asdict(self.config.augment), "members": entries,
        }
        write_text_atomic(path / "config.yaml", dump_config(self.config))
        write_text_atomic(path / "committee.json", json.dumps(bundle, indent=2) + "\n")
        return path

    @classmethod
    def load(cls, path: str | Path, *, device: str | None = None, engine: str | None = None) -> "Committee":
        """Load a bundle written by `save`. Reads JSON and safetensors only: no code is executed.
        `engine` (engines.py, default auto): what runs its frozen members' backbones."""
        path = Path(path)
        meta_path = path / "committee.json"
        if not meta_path.is_file():
            raise DataCleanerError(f"{path} is not a committee bundle (no committee.json); create one with `datacleaner train`")
        meta = json.loads(meta_path.read_text())
        if meta.get("format") != FORMAT:
            raise DataCleanerError(f"{meta_path}: bundle format {meta.get('format')} is not supported (expected {FORMAT})")
        by_label: dict[str, MemberConfig] = {}  # a member's snapshots share one config
        for e in meta["members"]:
            member = MemberConfig(**{**e["member"], "pretrained": False, "pretrained_file": None})
            by_label.setdefault(member.label, member)
        members = list(by_label.values())
        cfg = CleanConfig(
            seed=meta["seed"], fusion=meta["fusion"], tta=TTAConfig(**meta["tta"]), augment=AugmentConfig(**meta["augment"]),
            members=members, device=device or "auto", engine=engine or "auto",
        )
        if cfg.engine not in ENGINES:
            raise DataCleanerError(f"engine must be one of {', '.join(ENGINES)}, got '{cfg.engine}'")
        committee = cls(cfg)
        committee.classes_ = list(meta["classes"])
        committee.cache_size_ = int(meta["cache_size"])
        committee.judges_, committee.members_, committee.preps_ = [], [], []
        for entry in meta["members"]:
            judge = Judge(by_label[entry["member"].get("name") or entry["member"]["arch"]], entry.get("cycle"))
            model = create_member_model(judge.member, len(committee.classes_), load_pretrained=False)
            weights = path / entry["file"]
            try:
                model.load_state_dict(load_file(weights))
            except Exception as exc:
                raise DataCleanerError(f"{weights}: cannot load member weights ({str(exc).splitlines()[0][:160]})") from None
            committee.judges_.append(judge)
            committee.members_.append(model.eval())
            committee.preps_.append(Preprocess(size=entry["size"], mean=tuple(entry["mean"]), std=tuple(entry["std"])))
        return committee

    # judging ---------------------------------------------------------------------------
    @property
    def weights_(self) -> np.ndarray:
        """(M,) every judge's fusion weight."""
        return np.array([j.weight for j in self.judges_], dtype=np.float64)

    def predict_outputs(self, images: np.ndarray, *, index: np.ndarray | None = None, progress: Progress = QUIET) -> np.ndarray:
        """(N, M, V, C) TTA logits of every member on decoded images (N, S, S, 3) uint8; `index` (N,):
        the images' positions in a larger set, which seeded views are drawn for (default 0..N-1)."""
        device = resolve_device(self.config.device)
        idx = np.arange(len(images))
        outputs = []
        for judge, model, prep in zip(self.judges_, self.members_, self.preps_):
            backbone = self._backbone(judge.member, model, prep, device, progress)
            with progress.bar(len(idx), f"judge {judge.label}") as bar:
                outputs.append(
                    predict_logits(
                        model, images, idx, prep, self.config.tta, self.config.augment, device=device,
                        seed=self.config.seed, batch_size=self.config.batch_size_predict, on_batch=bar.update,
                        view_index=index, backbone=backbone,
                    )
                )
        return np.stack(outputs, axis=1)

    def features(self, images: np.ndarray) -> np.ndarray:
        """(N, D) penultimate features of every member, each L2-normalised, concatenated."""
        from .predict import predict_features

        device = resolve_device(self.config.device)
        parts = []
        for judge, model, prep in zip(self.judges_, self.members_, self.preps_):
            f = predict_features(model, images, prep, device=device,
                                 backbone=self._backbone(judge.member, model, prep, device))
            parts.append(f / np.clip(np.linalg.norm(f, axis=1, keepdims=True), 1e-12, None))
        return np.concatenate(parts, axis=1)

    def health_source(self) -> str:
        """Where `health_features` come from: 'backbone' (a frozen member) or 'pixels'."""
        return "backbone" if any(m.frozen for m in self.config.members) else "pixels"

    def health_features(self, images: np.ndarray) -> np.ndarray:
        """(N, D) features for near duplicates against the labeled set (health/): the first frozen
        member's backbone (pretrained, never fine-tuned) on the unaugmented image, else the pixels."""
        from .predict import predict_features

        device = resolve_device(self.config.device)
        for judge, model, prep in zip(self.judges_, self.members_, self.preps_):
            if judge.member.frozen:
                return predict_features(model, images, prep, device=device,
                                        backbone=self._backbone(judge.member, model, prep, device))
        return health.pixel_features(images)

    def record_labeled(self, path: str | Path, images: np.ndarray, paths: list[str], labels: np.ndarray,
                       sizes: np.ndarray | None, idx: np.ndarray) -> None:
        """Save what `select` needs to recognise the labeled images[idx] in a pool without the dataset
        (labeled.npz in the bundle): paths, labels, pixel digests, perceptual hashes, compact features."""
        feats, hashes, digests = [], [], []
        step = health.pixel_rows(images)
        for s in range(0, len(idx), step):
            rows = idx[s : s + step]
            chunk = np.asarray(images[rows])
            feats.append(self.health_features(chunk))
            hashes.append(health.phash(chunk))
            digests.append(health.pixel_digests(chunk, None if sizes is None else sizes[rows]))
        raw = np.concatenate(feats) if feats else np.zeros((0, 1), dtype=np.float32)
        compact, mean = health.compact_features(raw)
        buf = io.BytesIO()
        np.savez(buf, paths=np.array([paths[i] for i in idx], dtype=str), labels=np.asarray(labels)[idx],
                 phash=np.concatenate(hashes or [np.zeros(0, np.uint64)]), digest=np.concatenate(digests or [np.zeros((0, 16), np.uint8)]),
                 features=compact, mean=mean, source=self.health_source())
        write_bytes_atomic(Path(path) / LABELED, buf.getvalue())

    def predict_proba(self, images: np.ndarray, *, progress: Progress = QUIET) -> np.ndarray:
        """(N, C) fused probabilities."""
        return fuse(self.predict_outputs(images, progress=progress), self.weights_, mode=self.config.fusion)

    def decode(self, files: list[Path], *, progress: Progress = QUIET, out: np.ndarray | None = None):
        """Decode image files at the committee's cache size: ((N, S, S, 3) uint8, {index: reason})."""
        with progress.bar(len(files), "check+decode") as bar:
            return decode_images(files, self.cache_size_, out, progress=bar.update)

    def predict_paths(self, files: list[str | Path]) -> tuple[np.ndarray, dict[int, str]]:
        """Fused probabilities (N, C) for image files (rows of unreadable files are NaN) and their reasons."""
        images, problems = self.decode([Path(f) for f in files])
        probs = self.predict_proba(images)
        if problems:
            probs[list(problems)] = np.nan
        return probs, problems
