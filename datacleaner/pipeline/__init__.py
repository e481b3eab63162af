"""The `clean` pipeline as stages, one module each, every stage a function a reader can run alone:

    prepare.prepare          find, fingerprint, decode once (cache/), pixel facts for the health checks
      -> start.start_run     check config and weights, plan the folds, record run.json / config.yaml / manifest.csv
      -> heads.fit_frozen_heads     frozen members: backbone features once (jobs), a logistic head per round -> logits/
         tuned.train_members        fine-tuned members: training jobs per (round, member) -> members/
         tuned.judge_members        their judging jobs: TTA logits per (round, judge) -> logits/
      -> judge.judge_pass    fuse each round's logits and score every image (scoring.py)
      -> checks.health_verdict      data-health checks on the cached pixel facts and features (health/)
      -> report.write_outputs       scores.csv, review.csv, health.csv, summary.json

`clean_job.clean` runs them in that order (passes: 2 runs the middle stages twice, start.start_pass
saying what pass 2 leaves out); `report.rescore` re-runs judge -> write on a finished run;
`train.train_committee` reuses prepare for a `select` bundle. `rundir.RunDir` holds only the
run directory's paths (named by what determines each file) and its atomic I/O.
"""

from .clean_job import clean
from .report import CleanResult, rescore
from .rundir import RunDir
from .train import train_committee

__all__ = ["CleanResult", "RunDir", "clean", "rescore", "train_committee"]
