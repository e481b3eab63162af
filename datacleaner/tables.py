"""Review tables and CSV writing.  [I/O]

Columns of scores.csv and review.csv (one row per image):

path              image path relative to the dataset root
given_label       the dataset's label
suggested_label   the committees' label (argmax of the fused probabilities, mean over rounds)
suggested_prob    its fused probability
given_label_prob  fused probability of the given label, mean over rounds
label_quality     in [0, 1], lower = more likely mislabeled (= given_label_prob)
flag_count        rounds that flagged the image
rounds            rounds that judged the image
vote_<member>     each member's label (its most frequent over the rounds that judged the image)
issue             mislabel | low_confidence | unreadable | '' (not in review)
reason            why an image is unreadable, else ''
checksum          sha256 prefix of the file as judged (`apply` refuses files changed since)
reviewed_label    empty, for the annotator
"""

from __future__ import annotations

import io
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd

from .scoring import Scores

CSV_CHUNK = 50_000  # rows per write
_UMASK = os.umask(0)  # read once (os.umask can only be read by setting it)
os.umask(_UMASK)

COLUMNS = [
    "path", "given_label", "suggested_label", "suggested_prob", "given_label_prob", "label_quality",
    "flag_count", "rounds", "issue", "reason", "checksum", "reviewed_label",
]
TEXT_COLUMNS = ("path", "given_label", "suggested_label", "reason")
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def neutralise(value: str) -> str:
    """Prefix a quote to text a spreadsheet would run as a formula."""
    return "'" + value if isinstance(value, str) and value.startswith(FORMULA_START) else value


def unneutralise(value: str) -> str:
    """The text as the user wrote it, from its neutralised CSV form."""
    return value[1:] if isinstance(value, str) and value.startswith("'") and value[1:2] in FORMULA_START else value


def score_table(
    paths: list[str], classes: list[str], scores: Scores, problems: dict[int, str], votes: dict[str, np.ndarray] | None = None,
) -> pd.DataFrame:
    """Every image, in dataset order; `votes` ({member: (N,) label index or -1}) become vote_<member> columns."""
    names = np.array(classes + [""], dtype=object)  # index -1 (never judged) -> ''
    issue = scores.issue
    reason = np.full(len(paths), "", dtype=object)
    for i, why in problems.items():
        issue[i], reason[i] = "unreadable", why
    table = pd.DataFrame(
        {
            "path": paths,
            "given_label": names[scores.given_label],
            "suggested_label": names[scores.suggested_label],
            "suggested_prob": np.round(scores.suggested_prob, 5),
            "given_label_prob": np.round(scores.given_label_prob, 5),
            "label_quality": np.round(scores.label_quality, 5),
            "flag_count": scores.flag_count,
            "rounds": scores.rounds,
            "issue": issue,
            "reason": reason,
            "reviewed_label": "",
        },
        columns=[c for c in COLUMNS if c != "checksum"],
    )
    at = table.columns.get_loc("rounds") + 1
    for k, (member, v) in enumerate((votes or {}).items()):
        table.insert(at + k, f"vote_{member}", names[v])
    return table


def review_table(scores_table: pd.DataFrame) -> pd.DataFrame:
    """Flagged images, most suspect first (most flags, then lowest label_quality), unreadable files last."""
    flagged = scores_table[scores_table["issue"].isin(["mislabel", "low_confidence"])]
    flagged = flagged.sort_values(["flag_count", "label_quality", "path"], ascending=[False, True, True], kind="stable")
    unreadable = scores_table[scores_table["issue"] == "unreadable"]
    return pd.concat([flagged, unreadable]).reset_index(drop=True)


def write_csv_atomic(table: pd.DataFrame, path: str | Path, *, neutralised: bool = False) -> Path:
    """Write `table` as CSV (formula-like text neutralised, unless the caller says it already is)
    via a temporary file and rename."""
    path = Path(path)
    out = table
    if not neutralised:
        out = table.copy()
        for col in TEXT_COLUMNS:
            if col in out:
                out[col] = out[col].map(neutralise)
    with atomic_file(path) as f:  # streamed in chunks: a million rows never become one string
        text = io.TextIOWrapper(f, encoding="utf-8", newline="")
        out.to_csv(text, index=False, chunksize=CSV_CHUNK)
        text.flush()
        text.detach()  # leave the file to atomic_file
    return path


def write_text_atomic(path: str | Path, text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    with atomic_file(path) as f:
        f.write(data)


@contextmanager
def atomic_file(path: str | Path):
    """A binary file that replaces `path` only when the block completes (temporary file, fsync, rename).
    It keeps the mode of the file it replaces; a new file gets the usual 0666 less the umask."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, path.stat().st_mode & 0o7777 if path.exists() else 0o666 & ~_UMASK)
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
