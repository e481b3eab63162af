"""Stage 5, health: the compact features the health checks search (computed once per run), the verdict from
the cached pixel facts and features (health.assess), and health.csv's table.  [I/O]"""

from __future__ import annotations

import dataclasses
import io

import numpy as np
import pandas as pd

from .. import health
from ..tables import LABEL_ISSUES, primary_issue, write_bytes_atomic
from .heads import backbone_features, frozen_features
from .judge import FinishedRun
from .rundir import RunDir, health_member
from .start import RunContext


def health_features(ctx: RunContext) -> None:
    """Compact features of every image for the health checks (RunDir.health_features_path), computed once per run."""
    cfg, path = ctx.cfg, ctx.run.health_features_path(ctx.cfg, ctx.info)
    if path.is_file():
        return
    member, images = health_member(cfg, ctx.info), ctx.prepared.images
    if member is None:
        feats = health.PixelFeatures(images)  # computed a chunk at a time as compact_features reads them
    elif member.frozen:
        feats = frozen_features(ctx, member)  # (N, V, D), already computed for the heads
    else:  # one unaugmented view through the pretrained backbone, in jobs like the frozen members' features
        one_view = dataclasses.replace(cfg.tta, mode="deterministic", views=1)
        raw = path.with_name(path.stem + "-backbone.npy")
        feats = backbone_features(ctx, member, one_view, raw, f"health features {member.label}")
    compact = health.compact_features(feats)[0]
    lonely = health.compact_features(feats, centre=False)[0] if member is not None else compact
    buf = io.BytesIO()
    np.savez(buf, features=compact, outlier_features=lonely, source="pixels" if member is None else "backbone")
    write_bytes_atomic(path, buf.getvalue())
    if member is not None and not member.frozen:  # what the compact features came from: not needed again
        raw.unlink(missing_ok=True)
        raw.with_suffix(".json").unlink(missing_ok=True)


def health_verdict(run: RunDir, done: FinishedRun, scores) -> tuple[health.Health | None, list[str], dict[str, np.ndarray]]:
    """The data-health verdict from the run's cached pixel facts and features (None when `checks` is none),
    notes on checks that could not run (a run directory from before they existed), and the property scores."""
    checks = health.parse_checks(done.cfg.checks)
    if not checks:
        return None, [], {}
    notes = []
    info = done.info
    cache = run.health_facts_path(info["cache_size"], info["fingerprint"])
    pixels = {}
    if cache.is_file():
        with np.load(cache) as saved:
            pixels = dict(saved)
    else:
        notes.append("duplicate and image-property checks skipped: this run's decoded cache predates them (re-run `clean`)")
    features = lonely = None
    source = "backbone"
    path = run.health_features_path(done.cfg, info)
    if path.is_file():
        with np.load(path) as saved:
            features, lonely, source = saved["features"], saved["outlier_features"], str(saved["source"])
    elif {"outlier", "near_duplicate", "conflicting_labels"} & set(checks):
        notes.append("feature-based near duplicates and outliers skipped: no health features in this run (re-run `clean`)")
    props = {k[len("prop_"):]: v for k, v in pixels.items() if k.startswith("prop_")} or None
    facts = health.Facts(
        done.manifest["path"].tolist(), done.labels, info["classes"], (done.manifest["reason"] == "").to_numpy(),
        health.thresholds(source), props=props, hashes=pixels.get("phash"), digests=pixels.get("digest"), features=features,
        outlier_features=lonely, suggested=scores.suggested_label, suggested_prob=scores.suggested_prob,
    )
    verdict = health.assess(facts, checks)
    return verdict, notes + verdict.notes, props or {}


def group_sizes(group: pd.Series) -> dict:
    """summary.json's record of the duplicate groups: how many, the largest, and how many of each size."""
    sizes = group[group != ""].value_counts()
    counts = sizes.value_counts().sort_index()
    return {"groups": int(len(sizes)), "largest": int(sizes.max()) if len(sizes) else 0,
            "sizes": {str(k): int(n) for k, n in counts.items()}}


def health_table(table: pd.DataFrame, verdict: health.Health, props: dict[str, np.ndarray]) -> pd.DataFrame:
    """health.csv: every image with a data-health finding, whether it asks for a decision (a row of review.csv)
    or is reported only (image properties): its health issues, detail, duplicate group and the property
    scores behind them (the health package's docstring), most important issue first."""
    has = np.array([bool(v) for v in verdict.issues])
    out = pd.DataFrame({
        "path": table["path"], "given_label": table["given_label"],
        "issue": [";".join(v) for v in verdict.issues],
        "in_review": primary_issue(table["issue"]).isin((*LABEL_ISSUES, *health.DECISION_ISSUES)).to_numpy(),
        "detail": verdict.detail, "duplicate_group": table["duplicate_group"],
    })
    names = {"p99": "luminance_p99", "p5": "luminance_p5", "entropy": "entropy", "sharpness": "sharpness",
             "colour": "colour", "aspect": "aspect_ratio", "size": "relative_size"}
    for key, column in names.items():
        if key in props and len(props[key]) == len(out):
            out[column] = np.round(np.asarray(props[key], dtype=np.float64), 4)
    if verdict.outlier_score is not None:
        out["outlier_score"] = np.round(verdict.outlier_score.astype(np.float64), 3)
    rank = {name: k for k, name in enumerate(health.ISSUES)}
    out = out[has].assign(_rank=[rank[v[0]] for v in verdict.issues if v])
    return out.sort_values(["_rank", "duplicate_group", "path"], kind="stable").drop(columns="_rank").reset_index(drop=True)
