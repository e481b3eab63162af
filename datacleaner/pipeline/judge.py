"""Stage 4, judge: every round's cached TTA logits fused across members (calibrate.fused_rounds) and scored
(scoring.score_rounds): label_quality, error_prob, flags and the list length for every image.  [numpy, I/O]"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..arrays import GiB, NpyFile, memory_budget, scratch_array
from ..calibrate import fused_rounds
from ..config import CleanConfig, judges, load_config, set_judge_weight
from ..errors import DataCleanerError
from ..folds import FoldPlan
from ..fuse import majority_vote
from ..progress import Progress
from ..scoring import score_rounds
from .rundir import RunDir


def round_outputs(
    run: RunDir, cfg: CleanConfig, info: dict, plan: FoldPlan, held_out: str | None = None
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per round: (judged indices (n,), list of every judge's cached TTA logits (n, V, C), memory-mapped)."""
    out = []
    for r in range(plan.n_rounds):
        outputs = []
        for judge in judges(cfg.members):
            path = run.logits_path(cfg, judge, r, info, held_out)
            if not path.is_file():
                raise DataCleanerError(
                    f"{run.path}: logits of round {r + 1}{' (pass 2)' if held_out else ''} member {judge.label} "
                    "are missing; re-run `clean` to finish the run"
                )
            outputs.append(NpyFile(path))  # (n, V, C), read in pieces
        out.append((plan.judge_idx(r), outputs))
    return out


def judge_outputs(outputs: list[tuple[np.ndarray, np.ndarray]], labels: np.ndarray, cfg: CleanConfig, judgements: int,
                  mean_probs: np.ndarray | None = None):
    """(Scores, fitted parameters, (N, M) each member's majority label or -1) of every image from
    per-round outputs (see round_outputs), with the config's fusion, calibration, weights and flag
    rule; `judgements` per image sets the default T. One round's fused probabilities are held at a
    time; `mean_probs` (N, C) float32 zeros, if given, receives their average (scoring.score_rounds)."""
    voices = judges(cfg.members)
    votes = np.full((len(outputs), len(labels), len(voices)), -1, dtype=np.int32)  # (R, N, M)
    fitted: dict = {"temperatures": [], "weights": []}
    rounds = fused_rounds(outputs, labels, np.array([j.weight for j in voices]), mode=cfg.fusion,
                          calibrate=cfg.calibrate, fit=cfg.fit_weights, votes=votes, fitted=fitted)
    T = cfg.resolved_min_flags(judgements)
    scores = score_rounds(rounds, labels, tau=cfg.tau, min_flags=T, rule=cfg.flag_rule, quality=cfg.label_quality,
                          min_error_prob=cfg.min_error_prob, mean_probs=mean_probs)
    return scores, fitted, majority_vote(votes)


def probabilities_on_disk(images: int, classes: int, budget: int) -> bool:
    """Whether judge_pass averages the images' class probabilities (N x C float32) in a file: above half the budget."""
    return images * classes * 4 > budget / 2


def judge_pass(run: RunDir, cfg: CleanConfig, info: dict, plan: FoldPlan, labels: np.ndarray, *, held_out: str | None,
           progress: Progress | None = None):
    """Scores of every image from the cached logits of one pass. The images' averaged probabilities
    (N x C) go to a file (deleted as soon as it is open) when they exceed half the memory budget."""
    N, C, mean_probs = len(labels), len(info["classes"]), None
    budget = memory_budget(cfg.memory_gb)
    if probabilities_on_disk(N, C, budget):
        mean_probs = scratch_array(run.file("cache"), "mean-probs", (N, C))
        if progress is not None:
            progress.info(f"memory: the images' class probabilities ({N * C * 4 / GiB:.1f} GB) exceed half the memory "
                          f"budget ({budget / GiB:.1f} GB, memory_gb): averaging them on disk")
    return judge_outputs(round_outputs(run, cfg, info, plan, held_out), labels, cfg, plan.judgements_per_image, mean_probs)


@dataclass
class FinishedRun:
    """A run directory's record of a finished `clean`: what re-scoring reads."""

    cfg: CleanConfig  # its config, with any changes asked for
    info: dict  # run.json
    manifest: pd.DataFrame  # path, label, part, reason, checksum
    plan: FoldPlan
    held_out: str | None  # pass 2's key (passes: 2), else None

    @property
    def labels(self) -> np.ndarray:
        return self.manifest["label"].to_numpy(dtype=np.int64)


def load_finished_run(run: RunDir, changes: dict, weights: dict[str, float]) -> FinishedRun:
    """The run's config with `changes` (config keys) and member `weights` applied, its manifest and plan."""
    info = run.read_json("run.json")
    if info is None or not run.file("manifest.csv").is_file():
        raise DataCleanerError(f"{run.path} is not a finished run directory (no run.json / manifest.csv); run `clean` first")
    cfg = load_config(run.file("config.yaml"))
    for label, w in weights.items():
        set_judge_weight(cfg.members, label, w)
    cfg = load_config(cfg, changes)
    manifest = pd.read_csv(run.file("manifest.csv"), dtype={"path": str, "reason": str, "checksum": str}, keep_default_na=False)
    plan = FoldPlan(scheme=cfg.scheme, part=manifest["part"].to_numpy(dtype=np.int64))
    held_out = None
    if cfg.passes == 2:
        second = run.read_json("second_pass.json")
        if second is None:
            raise DataCleanerError(f"{run.path}: pass 2 has not run (no second_pass.json); re-run `clean` with passes: 2")
        held_out = second["held_out"]
    return FinishedRun(cfg, info, manifest, plan, held_out)
