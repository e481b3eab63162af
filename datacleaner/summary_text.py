"""The printed summary of a `clean` or `rescore` run, in lines a person reads, from its summary.json."""

from __future__ import annotations

from pathlib import Path

import typer


def print_summary(summary: dict, data: Path | None = None) -> None:
    per_class = ", ".join(f"{c}: {n}" for c, n in summary["flagged_per_class"].items())
    lines = [
        f"profile          {summary['profile']} ({summary.get('profile_reason', '')})" if "profile" in summary else None,
        f"images           {summary['images']} ({summary['unreadable']} unreadable), {summary['classes']} classes",
        f"scheme           {summary['scheme']}, {summary['folds']} folds, {summary['judgements_per_image']} judgement(s) per image",
        f"flag rule        {summary.get('flag_rule', 'fixed')}"
        + (f", tau={summary['tau']}" if summary.get("flag_rule", "fixed") == "fixed" else "") + f", T={summary['min_flags']}, "
        f"fusion={summary['fusion']}" + (", calibrated" if summary.get("calibrate") else "")
        + (", fitted weights" if summary.get("fit_weights") else "") + (", 2 passes" if summary.get("passes") == 2 else ""),
        f"flagged          {summary['flagged']} ({per_class})",
        _issue_line(summary),
        f"est. noise rate  {summary['estimated_noise_rate']:.1%} (confident joint); the committee disagrees with "
        f"{summary.get('committee_disagreement', 0):.1%} of the labels",
        _expected_line(summary),
        _length_line(summary),
    ]
    lines = [line for line in lines if line]
    if "wall_time_s" in summary:
        engines = summary.get("engines") or {}
        ran = f" ({', '.join(f'{m}: {e}' for m, e in engines.items())})" if engines else ""
        lines.append(f"wall time        {summary['wall_time_s']:.0f} s on {summary.get('device', '?')}{ran}")
    where = summary.get("executor")
    if isinstance(where, dict) and "ray" in where.values():
        lines.append("ran on Ray       " + ", ".join(kind for kind, on in where.items() if on == "ray"))
    peak, plan = (summary.get("peak_memory_mb") or {}).get("run"), summary.get("memory") or {}
    if peak and plan:
        heads = f", heads {plan['heads']}" if not isinstance(where, dict) or where.get("heads") != "none" else ""
        lines.append(f"memory           peak {peak / 1024:.1f} GB in this process (budget for large arrays {plan['budget_gb']:.1f} GB; "
                     f"decoded images {plan['decoded_images']}{heads})")
    lines.append(f"review list      {summary['review_csv']}")
    lines += kept_lines(summary)
    lines += [f"warning          {w}" for w in summary.get("warnings", [])]
    lines += [f"note             {n}" for n in summary.get("health_notes", [])]
    if summary["flagged"] or summary.get("in_review"):
        run_dir = Path(summary["review_csv"]).parent
        lines.append(f"next             datacleaner review {run_dir}   (in the browser; or datacleaner report {run_dir})")
        lines.append(f"then             datacleaner apply {summary['review_csv']} --dataset {data or 'DATA'}   (a dry run; --yes applies)")
    typer.echo("\n".join(lines))


def _expected_line(summary: dict) -> str | None:
    """What error_prob expects a reviewer to find."""
    first = summary.get("expected_wrong_in_first")
    if first is None:
        return None
    line = f"expected         about {summary['expected_wrong_labels']:.0f} wrong labels in the dataset"
    if first["rows"]:
        line += (f"; reviewing the first {first['rows']} rows of the review list should find about "
                 f"{first['wrong']:.0f} wrong labels")
    return line


def _length_line(summary: dict) -> str | None:
    """What decided how many label rows the review list has (summary.json list_length)."""
    length = summary.get("list_length") or {}
    if length.get("rule") == "min_error_prob":
        return f"list length      {length['rows']} label row(s): error_prob >= {length['min_error_prob']:g} (--min-error-prob)"
    if length.get("rule") != "auto":
        return None
    line = f"list length      {length['rows']} label row(s): {length['rows_at_cut']} with error_prob >= {length['min_error_prob']:g}"
    if length["lengthened_by"]:
        line += f", lengthened by {length['lengthened_by']} (down to error_prob {length['lowest_error_prob']:g})"
    line += f"; they expect {length['expected_in_rows']:g} of the {length['expected_wrong']:.0f} wrong labels expected"
    if not length["reached"]:
        line += (f", under {length['recall']:.0%}: the rest hide among images the committees did not flag or whose "
                 f"error_prob is under {length.get('floor', 0):g}")
    return line


def _issue_line(summary: dict) -> str | None:
    """The data-health issues found, most important first: those listed in the review list to decide, then
    those only reported in health.csv (none: checks off or nothing found)."""
    if "issues" not in summary:
        return None
    reported = summary.get("reported_only", {})
    found = {k: n for k, n in summary["issues"].items() if n and k not in ("mislabel", "low_confidence", "unreadable")}
    listed = ", ".join(f"{k.replace('_', ' ')} {n}" for k, n in found.items() if k not in reported) or "none"
    line = f"data health      {listed}" + ("" if summary.get("checks") else " (checks off)")
    if reported:
        line += "; reported in health.csv: " + ", ".join(f"{k.replace('_', ' ')} {n}" for k, n in reported.items())
    groups = summary.get("duplicate_groups") or {}
    if groups.get("groups"):
        line += f"; {groups['groups']} duplicate group(s), the largest of {groups['largest']}"
    return line + f"; {summary.get('in_review', 0)} row(s) in the review list"


def kept_lines(summary: dict) -> list[str]:
    """What became of decisions already made in the list a re-run replaced."""
    lines = [f"kept             {summary['decisions_kept']} review decision(s) already made"] if summary.get("decisions_kept") else []
    if summary.get("decisions_saved_in"):
        lines.append(f"saved            the previous list, with decisions whose image left the list, in {summary['decisions_saved_in']}")
    return lines
