"""`train`: a committee bundle for `select`, trained on the whole labeled dataset after the same
prepare stage as `clean`.  [I/O]"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ..committee import Committee
from ..config import CleanConfig, judges
from ..lock import run_lock
from ..progress import Progress
from .prepare import prepare
from .rundir import RunDir
from .start import configure_run


def train_committee(
    data: str | Path, out: str | Path, config: str | Path | CleanConfig | None = None, *,
    progress: Progress | None = None, **overrides,
) -> Committee:
    """Train the configured members on the whole labeled dataset and save a committee bundle in `out`
    (config as for `clean`). Re-running continues: members whose weights are already in `out` are not
    retrained. Returns the fitted Committee."""
    progress = progress or Progress()
    started = time.time()
    cfg, origin, pretrained = configure_run(config, overrides, progress, data)
    with run_lock(out, progress):
        run = RunDir(out)
        prepared = prepare(data, cfg, run, progress, min_per_class=2, guard=False)
        labeled = prepared.labeled
        keep = np.flatnonzero(prepared.usable)
        committee = Committee(cfg).fit(
            prepared.images, labeled.labels, labeled.classes, idx=keep, out=run.path / "cache",
            data_key=prepared.fingerprint, pretrained=pretrained, progress=progress,
        )
        committee.save(run.path)
        sizes = None if prepared.sizes is None else np.asarray(prepared.sizes, dtype=np.int64).reshape(-1, 2)
        committee.record_labeled(run.path, prepared.images, labeled.paths, labeled.labels, sizes, keep)
        run.write_json("summary.json", {
            "images": len(labeled.paths), "trained_on": int(len(keep)), "unreadable": len(prepared.problems),
            "classes": labeled.classes, "members": [j.label for j in judges(cfg.members)], "profile": origin.profile,
            "profile_reason": origin.reason, "wall_time_s": round(time.time() - started, 1),
            "engines": {j.label: committee.__dict__.get("engines_", {}).get(j.member.label, "torch") for j in judges(cfg.members)},
        })
    return committee
