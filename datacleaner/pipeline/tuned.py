"""Stage 3b, fine-tuned members: training jobs per (round, member) (snapshot members one job per learning-rate
cycle), then judging jobs that write each (round, judge)'s TTA logits: logits/ files.  [I/O]"""

from __future__ import annotations


import numpy as np

from ..config import Judge
from ..executors import Job, Later, Rows, Shared
from ..jobs import predict_job, train_cycle_job, train_job
from ..keys import member_seed
from ..tables import write_bytes_atomic
from .rundir import join_parts, part_path, save_array, shard_spans
from .start import Pass, RunContext


def train_members(ctx: RunContext, tuned: list[tuple[int, Judge]], pass_: Pass) -> int:
    """Fine-tuned members whose weights are not cached yet train as jobs; returns how many (round, member)
    trained. A member with snapshots trains one job per learning-rate cycle: all trainings' next cycles
    run together, and each cycle's end is saved as it arrives (Cycles), so a killed run resumes there."""
    cfg, R = ctx.cfg, ctx.plan.n_rounds
    seen, plain, chains = set(), [], []
    for r, j in tuned:
        if (r, j.member.label) in seen:
            continue
        seen.add((r, j.member.label))
        if j.member.snapshots:
            cycles = ctx.run.cycles(cfg, j.member, r, ctx.info, pass_.held_out)
            if not cycles.done:
                chains.append((r, j.member, cycles))
        elif not ctx.run.weights_path(cfg, j, r, ctx.info, pass_.held_out).is_file():
            plain.append((r, j.member))
    images = Shared(ctx.prepared.images)

    def common(r, m):
        return dict(images=images, labels=ctx.labels, idx=ctx.train_idx(r, pass_), aug=cfg.augment,
                    seed=member_seed(cfg.seed, r, m.label))

    def next_cycles() -> tuple[list[Job], list]:
        jobs, owners = [], []
        for r, m, cycles in chains:
            if not cycles.done:
                cycle, state = cycles.next()
                jobs.append(ctx.job(
                    train_cycle_job, m, f"train r{r + 1}{pass_.label} {m.label} c{cycle}", **common(r, m), cycle=cycle,
                    state=state and Later(state), desc=f"round {r + 1}/{R}{pass_.label} train {m.label} cycle {cycle}/{m.cycles}",
                ))
                owners.append((r, m, cycles, cycle))
        return jobs, owners

    jobs, owners = next_cycles()
    jobs += [ctx.job(train_job, m, f"train r{r + 1}{pass_.label} {m.label}", **common(r, m),
                     desc=f"round {r + 1}/{R}{pass_.label} train {m.label}", metadata={"round": str(r)})
             for r, m in plain]
    owners += plain
    with ctx.watch.stage("train"):
        while jobs:
            for i, result in ctx.executor.run(jobs):
                if len(owners[i]) == 2:  # a plain member: its final weights
                    r, m = owners[i]
                    write_bytes_atomic(ctx.run.weights_path(cfg, Judge(m), r, ctx.info, pass_.held_out), result)
                    epochs = m.epochs
                else:  # one cycle of a snapshot member
                    r, m, cycles, cycle = owners[i]
                    cycles.record(cycle, result)
                    epochs = m.restart_epochs
                ctx.watch.count("member_epochs", epochs)
                ctx.watch.count("train_image_epochs", len(ctx.train_idx(r, pass_)) * epochs)
            jobs, owners = next_cycles()
    return len(plain) + len(chains)


def judge_members(ctx: RunContext, tuned: list[tuple[int, Judge]], pass_: Pass) -> None:
    """Each trained (round, judge) judges its round's images in jobs of ctx.shard images; each shard's logits
    are saved as they arrive (a killed run resumes there) and joined into the judge's logits (n_judged, V, C)
    once all are back, so memory holds one shard."""
    cfg, R, images = ctx.cfg, ctx.plan.n_rounds, ctx.prepared.images
    jobs, owner, left, spans, where = [], [], {}, {}, {}
    for k, (r, j) in enumerate(tuned):
        weights = Shared(ctx.run.weights_path(cfg, j, r, ctx.info, pass_.held_out).read_bytes())
        logits = ctx.run.logits_path(cfg, j, r, ctx.info, pass_.held_out)
        parts = logits.with_suffix(".parts")
        parts.mkdir(parents=True, exist_ok=True)
        where[k] = (parts, logits)
        judge = ctx.plan.judge_idx(r)
        spans[k] = shard_spans(len(judge), ctx.shard) or [(0, 0)]
        left[k] = {span for span in spans[k] if not part_path(parts, span).is_file()}
        for s, e in sorted(left[k]):
            shard = judge[s:e]
            jobs.append(ctx.job(
                predict_job, j.member, f"judge r{r + 1}{pass_.label} {j.label}", weights=weights, images=Rows(images, shard),
                index=shard, tta=cfg.tta, aug=cfg.augment, seed=cfg.seed, batch_size=cfg.batch_size_predict,
                desc=f"round {r + 1}/{R}{pass_.label} judge {j.label}",
            ))
            owner.append((k, (s, e)))
        if not left[k]:
            join_parts(parts, spans[k], logits, np.float32)
    with ctx.watch.stage("predict"):
        for i, (shard_logits, _) in ctx.executor.run(jobs):
            k, span = owner[i]
            parts, logits = where[k]
            save_array(part_path(parts, span), shard_logits)
            ctx.watch.count("predict_image_views", shard_logits.shape[0] * shard_logits.shape[1])
            left[k].discard(span)
            if not left[k]:
                join_parts(parts, spans[k], logits, np.float32)
