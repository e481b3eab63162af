"""The `datacleaner` command line: parses, calls the library, presents the result."""

from __future__ import annotations

import functools
import json
import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from .errors import DataCleanerError
from .summary_text import kept_lines, print_summary

app = typer.Typer(
    help="Clean labeled image datasets with K-fold committees of timm models.",
    no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False, rich_markup_mode=None,
)
profiles_app = typer.Typer(help="The built-in profiles: list them, or print one to copy and edit.", invoke_without_command=True)
app.add_typer(profiles_app, name="profiles")


def _show_version(value: bool) -> None:
    if value:
        from . import __version__

        typer.echo(f"datacleaner {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: Annotated[bool, typer.Option("--version", callback=_show_version, is_eager=True, help="Print the version and exit.")] = False,
):
    """Clean labeled image datasets with K-fold committees of timm models."""


def command(fn, group: typer.Typer = app, name: str | None = None):
    """Register a command whose library errors become one line on stderr and exit code 1."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (typer.Exit, typer.Abort):
            raise
        except DataCleanerError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from None
        except FloatingPointError as exc:
            typer.echo(f"error: training diverged: {exc}", err=True)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            typer.echo("interrupted: finished members are cached; run the same command again to continue", err=True)
            raise typer.Exit(130) from None
        except Exception as exc:  # a bug or an environment problem: one line, traceback on request
            if os.environ.get("DATACLEANER_DEBUG"):
                raise
            typer.echo(
                f"error: unexpected {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''} "
                "(set DATACLEANER_DEBUG=1 for the traceback and please report it)",
                err=True,
            )
            raise typer.Exit(2) from None

    return group.command(name)(wrapper)


def _progress(quiet: bool, verbose: bool):
    from .progress import Progress

    return Progress(0 if quiet else 2 if verbose else 1)


Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars or notes.")]
Verbose = Annotated[bool, typer.Option("--verbose", "-v", help="Per-epoch losses and cache decisions.")]
ConfigFile = Annotated[Optional[str], typer.Option(
    "--config", "-c", help="Built-in profile (cpu, gpu, small: see `datacleaner profiles`) or a YAML file (which may "
    "build on one with base: NAME); default: chosen from the data and the device (small for small grayscale scans, "
    "else gpu with a CUDA GPU, cpu without).")]
WeightsDir = Annotated[Optional[Path], typer.Option(
    "--weights-dir", help="Folder of <arch>.safetensors / <arch>.<tag>.safetensors tried before timm's hub "
    "(default: $DATACLEANER_WEIGHTS_DIR).")]
ENGINE_HELP = ("What runs frozen members' backbones: auto (ONNX Runtime on the CPU, torch on a GPU), torch, "
               "or onnxruntime.")
EngineOption = Annotated[Optional[str], typer.Option(help=ENGINE_HELP)]
Members = Annotated[Optional[str], typer.Option(help="Comma-separated member names or timm architectures.")]
Epochs = Annotated[Optional[int], typer.Option(help="Training epochs for every member.")]
FlagRule = Annotated[
    Optional[str], typer.Option("--flag-rule", help="fixed (tau), noise_rate (estimated error count) or class_adaptive.")
]
LabelQuality = Annotated[Optional[str], typer.Option("--label-quality", help="self_confidence or normalized_margin.")]
Calibrate = Annotated[Optional[bool], typer.Option("--calibrate/--no-calibrate", help="Fit a temperature per member and round.")]
Executor = Annotated[Optional[str], typer.Option(help="local (this process) or ray (jobs as Ray tasks; pip install 'datacleaner[ray]').")]
RayAddress = Annotated[Optional[str], typer.Option("--ray-address", help="Existing Ray cluster (HOST:6379 or ray://HOST:10001); default: start Ray on this machine.")]
MinErrorProb = Annotated[Optional[str], typer.Option(
    "--min-error-prob", help="Keep in the review list only label problems whose error_prob is at least this (0..1): a "
    "shorter list. Default auto: 0.1, lengthened (never under 0.01) until the rows expect 80% of the wrong labels "
    "the run expects.")]


def _cut(value: str | None) -> float | str | None:
    """--min-error-prob: a number, or 'auto' (None: unchanged)."""
    if value is None or value.strip().lower() == "auto":
        return None if value is None else "auto"
    try:
        return float(value)
    except ValueError:
        raise DataCleanerError(f"--min-error-prob expects a number in [0, 1] or auto, got '{value}'") from None
Checks = Annotated[Optional[str], typer.Option(
    help="Data-health checks: all (default), none, duplicates, properties, or issue names, comma-separated "
    "(conflicting_labels, outlier, duplicate, near_duplicate, dark, light, blurry, low_information, grayscale, "
    "odd_aspect_ratio, odd_size).")]
MemoryGb = Annotated[Optional[float], typer.Option(
    "--memory-gb", help="What one stage may hold in large arrays, in GB (default: a quarter of this machine's memory); "
    "above it the stage works in pieces from disk.")]
FitWeights = Annotated[Optional[bool], typer.Option("--fit-weights/--no-fit-weights", help="Fit member fusion weights per round.")]


def _names(members: str | None) -> list[str] | None:
    return [m.strip() for m in members.split(",") if m.strip()] if members else None


@command
def clean(
    data: Annotated[Path, typer.Argument(help="Folder with one sub-folder per class, or a CSV manifest path,label.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Run directory: outputs, caches; re-run to resume.")],
    config: ConfigFile = None,
    scheme: Annotated[Optional[str], typer.Option(help="cv (train on K-1 parts) or dling (train on 1 part).")] = None,
    folds: Annotated[Optional[int], typer.Option(help="K, the number of parts.")] = None,
    members: Members = None,
    epochs: Epochs = None,
    tau: Annotated[Optional[float], typer.Option(help="Flag a round when the label's fused probability is below tau.")] = None,
    min_flags: Annotated[Optional[int], typer.Option("--min-flags", "-T", help="T: review when flagged in >= T rounds.")] = None,
    fusion: Annotated[Optional[str], typer.Option(help="Fuse 'logits' (default) or 'probs'.")] = None,
    tta_views: Annotated[Optional[int], typer.Option("--tta-views", help="V, views per image.")] = None,
    device: Annotated[Optional[str], typer.Option(help="auto, cpu, cuda or mps.")] = None,
    engine: EngineOption = None,
    seed: Annotated[Optional[int], typer.Option(help="Seed for folds, training and TTA.")] = None,
    flag_rule: FlagRule = None,
    label_quality: LabelQuality = None,
    calibrate: Calibrate = None,
    fit_weights: FitWeights = None,
    passes: Annotated[Optional[int], typer.Option(help="2: retrain each committee without pass 1's flagged images, judge again.")] = None,
    executor: Executor = None,
    ray_address: RayAddress = None,
    weights_dir: WeightsDir = None,
    checks: Checks = None,
    min_error_prob: MinErrorProb = None,
    memory_gb: MemoryGb = None,
    quiet: Quiet = False,
    verbose: Verbose = False,
):
    """Flag images whose label the committees contradict or doubt, and duplicates, outliers and bad
    images; write scores.csv and review.csv."""
    from .pipeline import clean as run_clean

    result = run_clean(
        data, out, config, progress=_progress(quiet, verbose), scheme=scheme, folds=folds, epochs=epochs, tau=tau,
        min_flags=min_flags, fusion=fusion, tta_views=tta_views, device=device, engine=engine, seed=seed, members=_names(members),
        flag_rule=flag_rule, label_quality=label_quality, calibrate=calibrate, fit_weights=fit_weights, passes=passes,
        executor=executor, ray_address=ray_address, weights_dir=weights_dir, checks=checks,
        min_error_prob=_cut(min_error_prob), memory_gb=memory_gb,
    )
    print_summary(result.summary, data)


@command
def rescore(
    run_dir: Annotated[Path, typer.Argument(help="A run directory written by `clean`.")],
    tau: Annotated[Optional[float], typer.Option(help="New tau.")] = None,
    min_flags: Annotated[Optional[int], typer.Option("--min-flags", "-T", help="New T.")] = None,
    fusion: Annotated[Optional[str], typer.Option(help="logits or probs.")] = None,
    weight: Annotated[Optional[list[str]], typer.Option(help="Member fusion weight NAME=W (a snapshot: NAME@cN=W); repeatable.")] = None,
    flag_rule: FlagRule = None,
    label_quality: LabelQuality = None,
    calibrate: Calibrate = None,
    fit_weights: FitWeights = None,
    checks: Checks = None,
    min_error_prob: MinErrorProb = None,
    quiet: Quiet = False,
):
    """Re-score a run from its cached logits in seconds, without training (data-health checks re-applied
    from cached data)."""
    from .pipeline import rescore as run_rescore

    weights = {}
    for item in weight or []:
        name, _, value = item.partition("=")
        try:
            weights[name] = float(value)
        except ValueError:
            raise DataCleanerError(f"--weight expects NAME=NUMBER, got '{item}'") from None
    result = run_rescore(
        run_dir, tau=tau, min_flags=min_flags, fusion=fusion, weights=weights, flag_rule=flag_rule,
        label_quality=label_quality, calibrate=calibrate, fit_weights=fit_weights, checks=checks,
        min_error_prob=_cut(min_error_prob), progress=_progress(quiet, False),
    )
    print_summary(result.summary)


@command
def demo(
    out: Annotated[Path, typer.Option("--out", "-o", help="Where to write the digits folder and the run.")] = Path("runs/demo"),
    noise: Annotated[float, typer.Option(help="Share of labels to flip.")] = 0.1,
    config: Annotated[str, typer.Option("--config", "-c", help="Built-in profile or YAML file.")] = "small",
    per_class: Annotated[Optional[int], typer.Option("--per-class", help="Use only the first N scans of each digit (default: all 1,797).")] = None,
    seed: Annotated[int, typer.Option(help="Seed for the flips and the run.")] = 0,
    quiet: Quiet = False,
    verbose: Verbose = False,
):
    """Clean scikit-learn's handwritten digits with a known share of flipped labels; print precision and recall."""
    from .demo import review_metrics, write_noisy_digits
    from .pipeline import clean as run_clean

    data = out / "digits"
    if not data.exists():
        truth = write_noisy_digits(data, noise=noise, seed=seed, per_class=per_class)
        truth.to_csv(out / "truth.csv", index=False)
    else:
        import pandas as pd

        truth = pd.read_csv(out / "truth.csv", dtype={"path": str, "true_label": str, "given_label": str})
        if abs(truth["flipped"].mean() - noise) > 0.01 or (per_class and len(truth) != 10 * per_class):
            raise DataCleanerError(f"{data} was written with another --noise or --per-class; use a new --out")
    typer.echo(f"demo data: {len(truth)} digit scans in {data}, {int(truth['flipped'].sum())} labels flipped")
    result = run_clean(data, out / "run", config, progress=_progress(quiet, verbose), seed=seed)
    print_summary(result.summary, data)
    m = review_metrics(result.scores, truth)
    typer.echo(
        f"against the flipped labels: precision {m['precision']:.3f}, recall {m['recall']:.3f}, "
        f"F1 {m['f1']:.3f}, AUROC of label_quality {m['auroc']:.3f}"
    )
    (out / "metrics.json").write_text(json.dumps(m, indent=2))


@command
def train(
    data: Annotated[Path, typer.Argument(help="Labeled folder (one sub-folder per class) or CSV manifest path,label.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Committee bundle directory.")],
    config: ConfigFile = None,
    members: Members = None,
    epochs: Epochs = None,
    device: Annotated[Optional[str], typer.Option(help="auto, cpu, cuda or mps.")] = None,
    engine: EngineOption = None,
    seed: Annotated[Optional[int], typer.Option(help="Seed for initialisation and augmentation.")] = None,
    weights_dir: WeightsDir = None,
    memory_gb: MemoryGb = None,
    quiet: Quiet = False,
    verbose: Verbose = False,
):
    """Train the committee on the whole labeled dataset and save it as a bundle for `select`."""
    from .pipeline import train_committee

    committee = train_committee(
        data, out, config, progress=_progress(quiet, verbose), epochs=epochs, device=device, engine=engine, seed=seed,
        members=_names(members), weights_dir=weights_dir, memory_gb=memory_gb,
    )
    summary = json.loads((out / "summary.json").read_text())
    typer.echo(
        f"committee of {len(committee.members_)} member(s) ({', '.join(summary['members'])}), "
        f"{len(committee.classes_)} classes, saved to {out}\nprofile          {summary['profile']} ({summary['profile_reason']})"
    )


@command
def select(
    pool: Annotated[Path, typer.Argument(help="Folder of unlabeled images (recursive) or a CSV with a path column.")],
    committee: Annotated[Path, typer.Option("--committee", help="Committee bundle from `datacleaner train`.")],
    production: Annotated[Path, typer.Option("--production", help="Predictions CSV (path,label,score[,per-class probs]), timm weights (with --production-arch) or a TorchScript file.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Run directory for selection.csv.")],
    budget: Annotated[Optional[int], typer.Option(help="B: mark the top B candidates in_budget.")] = None,
    method: Annotated[str, typer.Option(help="contradiction, js, margin, vote_entropy or mutual_info.")] = "contradiction",
    min_committee_prob: Annotated[float, typer.Option(help="Skip rule: committee probability at least this.")] = 0.8,
    min_production_score: Annotated[float, typer.Option(help="Skip rule: production score at least this.")] = 0.8,
    production_arch: Annotated[Optional[str], typer.Option(help="timm architecture of the production weights file.")] = None,
    production_classes: Annotated[Optional[str], typer.Option(help="Production class names in output order: comma-separated or a file with one per line (default: the committee's).")] = None,
    production_size: Annotated[Optional[int], typer.Option(help="Production model input size.")] = None,
    diverse: Annotated[bool, typer.Option("--diverse", help="Keep near-duplicates from filling the budget (k-center on committee features).")] = False,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or mps.")] = "auto",
    engine: Annotated[str, typer.Option(help=ENGINE_HELP)] = "auto",
    executor: Annotated[str, typer.Option(help="local (this process) or ray (shards of the pool as Ray tasks).")] = "local",
    ray_address: RayAddress = None,
    shard_images: Annotated[int, typer.Option(help="Pool images per prediction job (and per chunk held in memory).")] = 4096,
    memory_gb: MemoryGb = None,
    quiet: Quiet = False,
):
    """Rank pool images worth labeling: skip what production handles, order the rest by disagreement."""
    from .selection import Production, SelectOptions
    from .selection import select as run_select

    names = None
    if production_classes:
        p = Path(production_classes)
        names = [x.strip() for x in (p.read_text().splitlines() if p.is_file() else production_classes.split(",")) if x.strip()]
    options = SelectOptions(
        budget=budget, method=method, min_committee_prob=min_committee_prob, min_production_score=min_production_score,
        diverse=diverse, device=device, engine=engine, executor=executor, ray_address=ray_address, shard_images=shard_images,
        memory_gb=memory_gb,
    )
    model = Production(production, arch=production_arch, classes=names, size=production_size)
    result = run_select(pool, committee, model, out, options, progress=_progress(quiet, False))
    s = result.summary
    typer.echo(
        f"pool {s['pool']} images: {s['skipped']} skipped (production already handles them: {s['skip_rule']}), "
        f"{s['unreadable']} unreadable, {s['candidates']} candidates ({s['disagree']} disagree, "
        f"{s['low_confidence']} low confidence), {s['duplicates']} exact duplicate(s) reported once"
        + (f", top {s['budget']} in budget" if s["budget"] is not None else "")
        + f"\nselection list   {s['selection_csv']}"
        + "".join(f"\n{line}" for line in kept_lines(s))
        + f"\nnext             datacleaner review {out}   (in the browser; or datacleaner report {out})"
    )


@command
def apply(
    review: Annotated[Path, typer.Argument(help="A reviewed review.csv or selection.csv (reviewed_label filled in).")],
    dataset: Annotated[Path, typer.Option("--dataset", help="The dataset: class-folder root or CSV manifest.")],
    pool: Annotated[Optional[Path], typer.Option(help="Pool root for a selection.csv (default: from its summary.json).")] = None,
    yes: Annotated[bool, typer.Option("--yes", help="Make the changes (default: dry run that prints them).")] = False,
):
    """Relabel, drop (reviewed_label __drop__: to quarantine) or add images as reviewed; journaled, undoable."""
    from .apply import apply_review

    plan = apply_review(review, dataset, pool=pool, yes=yes)
    for line in plan.describe():
        typer.echo(line)
    for message in plan.refused:
        typer.echo(f"refused: {message}", err=True)
    changes = len(plan.ops) + len(plan.relabel) + len(plan.add_rows)
    verb = "applied" if yes else "would apply (dry run; add --yes to make the changes)"
    typer.echo(f"{verb}: {changes} change(s), {len(plan.refused)} refused, {plan.skipped} row(s) without a change")
    if yes and changes:
        typer.echo(f"undo with: datacleaner undo --dataset {dataset}")


@command
def undo(
    dataset: Annotated[Path, typer.Option("--dataset", help="The dataset the last apply changed.")],
):
    """Revert the last apply on the dataset exactly."""
    from .apply import undo_last

    journal = undo_last(dataset)
    typer.echo(f"undone: the apply of {journal['time']} ({len(journal['ops'])} file operation(s)) from {journal['review']}")


ListArg = Annotated[Path, typer.Argument(help="A review.csv or selection.csv, or the run directory holding one.")]
RootOption = Annotated[Optional[Path], typer.Option("--root", help="Folder the listed paths are relative to (default: from the run's records beside the list).")]


@command
def review(
    target: ListArg,
    host: Annotated[str, typer.Option(help="Address to listen on; anything but 127.0.0.1 lets other machines in (with the token).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on (0: any free port).")] = 8765,
    no_browser: Annotated[bool, typer.Option("--no-browser", help="Print the URL only; do not open a browser.")] = False,
    reviewer: Annotated[Optional[str], typer.Option(help="Name written to reviewed_by (default: your login name).")] = None,
    root: RootOption = None,
):
    """Review a list in the browser: thumbnails most suspect first, keyboard decisions saved to the list as you go."""
    from .review.server import serve

    serve(target, host=host, port=port, open_browser=not no_browser, reviewer=reviewer, root=root, echo=typer.echo)


@command
def report(
    run_dir: Annotated[Path, typer.Argument(help="A run directory of `clean` or `select`.")],
    out: Annotated[Optional[Path], typer.Option("--out", help="The HTML file to write (default: RUN_DIR/report.html).")] = None,
):
    """Write one self-contained HTML file (thumbnails embedded, opens offline) to share a run."""
    from .review.report import write_report

    typer.echo(f"report: {write_report(run_dir, out)}")


@command
def export(
    target: ListArg,
    format: Annotated[str, typer.Option("--format", help="Only label-studio for now.")] = "label-studio",
    out: Annotated[Path, typer.Option("--out", help="The tasks JSON file to write; the labeling config XML goes beside it.")] = Path("tasks.json"),
    image_url_prefix: Annotated[Optional[str], typer.Option(help="URL the images are served under (default: Label Studio local-files URLs).")] = None,
    root: RootOption = None,
):
    """Export a review list as Label Studio tasks with the committee's label as a scored prediction."""
    from .review.labelstudio import export_tasks

    if format != "label-studio":
        raise DataCleanerError(f"--format {format} is not supported; use --format label-studio")
    result = export_tasks(target, out, image_url_prefix=image_url_prefix, root=root)
    typer.echo(f"tasks           {result.tasks_path} ({result.tasks} tasks)\nlabeling config {result.config_path}")


def import_reviews(
    export_file: Annotated[Path, typer.Argument(metavar="EXPORT", help="Label Studio's JSON, JSON_MIN or CSV export of the exported tasks.")],
    into: Annotated[Path, typer.Option("--into", help="The review list (or its run directory) to fill reviewed_label in.")],
    root: RootOption = None,
):
    """Fill a review list's reviewed_label from a Label Studio export (rows matched by path)."""
    from .review.labelstudio import import_reviews as run_import

    result = run_import(export_file, into, root=root)
    typer.echo(result.describe())


command(import_reviews, name="import-reviews")


@profiles_app.callback()
def profiles_list(ctx: typer.Context):
    """List the built-in profiles, one line each."""
    from .config import profile_names, profile_summary

    if ctx.invoked_subcommand is None:
        for name in profile_names():
            typer.echo(f"{name:6s} {profile_summary(name)}")
        typer.echo("print one with: datacleaner profiles show NAME; use one with: --config NAME")


def profiles_show(name: Annotated[str, typer.Argument(help="A built-in profile (cpu, gpu, small) or a YAML config file.")]):
    """Print a built-in profile as YAML, to copy into a file and edit; or a YAML config file as a run
    would use it, its base resolved and every key filled in."""
    from .config import dump_config, profile_names, profile_text, resolve_config

    if name in profile_names() or not (Path(name).is_file() or name.endswith((".yaml", ".yml"))):
        typer.echo(profile_text(name), nl=False)  # an unknown name: the error lists the profiles
        return
    cfg, origin = resolve_config(name)
    typer.echo(f"# {origin.profile} as a run uses it ({origin.reason})\n{dump_config(cfg)}", nl=False)


command(profiles_show, group=profiles_app, name="show")


@command
def doctor(
    data: Annotated[Optional[Path], typer.Argument(help="Labeled data (class folders or CSV): also say which profile a run on it "
                                                         "would use, and why.", show_default=False)] = None,
    config: ConfigFile = None,
    weights_dir: WeightsDir = None,
    device: Annotated[Optional[str], typer.Option(help="auto, cpu, cuda or mps.")] = None,
):
    """Versions, the device a run would use, Ray, the profile (for DATA: chosen from the data) and where each member's
    weights would come from; exit 1 if a run would fail."""
    from .doctor import examine

    report = examine(config, {"weights_dir": weights_dir, "device": device}, data)
    width = max(len(what) for what, _ in report.facts)
    for what, value in report.facts:
        typer.echo(f"{what:{width}s}  {value}")
    if report.problems:
        for problem in report.problems:
            typer.echo(f"problem: {problem}", err=True)
        raise typer.Exit(1)
    typer.echo("ready: a run with this config has everything it needs")


def main() -> None:
    app()


if __name__ == "__main__":
    sys.exit(main())
