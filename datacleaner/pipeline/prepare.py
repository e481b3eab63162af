"""Stage 1, prepare: find the labeled images, fingerprint them, decode each once into the run's cache and
compute the pixel facts the health checks read; refuse data too small to fold.  [I/O]"""

from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import health
from ..arrays import GiB, NpyFile, NpyWriter, memory_budget
from ..config import CleanConfig
from ..dataset import LabeledImages, check_class_sizes, decode_images, find_labeled_images
from ..errors import DataCleanerError
from ..keys import digest
from ..models import member_preprocess
from ..progress import Progress, Stopwatch
from ..runtime import configure
from ..tables import write_bytes_atomic, write_text_atomic
from .rundir import RunDir


def data_fingerprint(labeled: LabeledImages) -> str:
    """Paths, labels, sizes and modification times of the dataset's files."""
    stats = []
    for i in range(len(labeled.paths)):
        try:
            st = labeled.absolute(i).stat()
            stats.append((st.st_size, st.st_mtime_ns))
        except OSError:
            stats.append((-1, -1))
    return digest([labeled.paths, labeled.labels.tolist(), labeled.classes, stats])


@dataclass
class Prepared:
    """A labeled dataset found, checked and decoded once into the run directory's cache."""

    labeled: LabeledImages
    fingerprint: str
    preps: dict  # member label -> Preprocess
    size: int  # side of the decoded cache
    images: np.ndarray  # (N, S, S, 3) uint8 memmap
    problems: dict  # index -> why the file is unreadable
    checksums: list  # (N,) sha256 prefixes
    usable: np.ndarray  # (N,) bool: readable
    sizes: list | None = None  # (N,) each file's own [width, height]; None for a cache from before they were recorded


def prepare(data, cfg: CleanConfig, run: RunDir, progress: Progress, *, min_per_class: int, guard: bool,
             watch: Stopwatch | None = None) -> Prepared:
    """Find, fingerprint, decode and check the labeled data; with `guard`, refuse a run dir holding other data."""
    watch = watch or Stopwatch()
    with watch.stage("scan"):
        labeled = find_labeled_images(data)
        fingerprint = data_fingerprint(labeled)
    for note in labeled.notes:
        progress.info(f"note: {note}")
    previous = run.read_json("run.json")
    if guard and previous and previous["fingerprint"] != fingerprint:
        raise DataCleanerError(
            f"{run.path} holds a run on other data (files, labels or timestamps differ from {data}); "
            f"choose a new --out, or delete {run.path} to start over"
        )
    configure(cfg.threads)
    preps = {m.label: member_preprocess(m) for m in cfg.members}
    size = cfg.cache_size or max(p.size for p in preps.values())
    run.path.mkdir(parents=True, exist_ok=True)
    with watch.stage("decode"):
        images, problems, checksums, sizes = decoded_cache(run, labeled, size, fingerprint, progress,
                                                            min(cfg.cache_memory_gb, memory_budget(cfg.memory_gb) / GiB / 2))
    usable = np.ones(len(labeled.paths), dtype=bool)
    usable[list(problems)] = False
    with watch.stage("health"):
        health_cache(run, images, sizes, fingerprint, progress)
    if problems:
        listing = "; ".join(f"{labeled.paths[i]} ({why})" for i, why in list(problems.items())[:5])
        progress.info(f"{len(problems)} unreadable file(s) left out of training: {listing}" + (" ..." if len(problems) > 5 else ""))
    check_class_sizes(labeled.labels, labeled.classes, usable, min_per_class, Path(data))
    return Prepared(labeled, fingerprint, preps, size, images, problems, checksums, usable, sizes)


def decoded_cache(run: RunDir, labeled: LabeledImages, size: int, fingerprint: str, progress: Progress,
                   memory_gb: float = 2.0):
    """(N, S, S, 3) uint8 array of every image, {index: reason} for unreadable ones, each file's
    checksum and its own (width, height) (None for a cache decoded before sizes were recorded).
    Decoded once per run into a file under cache/ (written a block at a time); read into RAM when it
    fits in `memory_gb`, else read from the file in pieces (arrays.NpyFile)."""
    name = f"images-{size}-{fingerprint}"
    array_path, problems_path = run.file("cache", name + ".npy"), run.file("cache", name + ".meta.json")
    if array_path.is_file() and problems_path.is_file():
        meta = json.loads(problems_path.read_text())
        problems = {int(k): v for k, v in meta["problems"].items()}
        return in_memory(array_path, memory_gb, progress), problems, meta["checksums"], meta.get("sizes")
    array_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = array_path.with_suffix(".partial.npy")
    checksums: list[str] = []
    sizes: list[tuple[int, int]] = []
    with progress.bar(len(labeled.paths), "check+decode") as bar, \
            NpyWriter(tmp, (len(labeled.paths), size, size, 3), np.uint8, block_rows=1) as out:
        files = [labeled.absolute(i) for i in range(len(labeled.paths))]
        _, problems = decode_images(files, size, out, progress=bar.update, checksums=checksums, sizes=sizes)
    os.replace(tmp, array_path)
    sizes = [list(s) for s in sizes]
    meta = {"problems": {str(k): v for k, v in problems.items()}, "checksums": checksums, "sizes": sizes}
    write_text_atomic(problems_path, json.dumps(meta))
    return in_memory(array_path, memory_gb, progress), problems, checksums, sizes


def in_memory(path: Path, memory_gb: float, progress: Progress | None = None) -> np.ndarray | NpyFile:
    """The decoded cache read into RAM if it fits `memory_gb`; read from the file in pieces otherwise (and said so)."""
    images = NpyFile(path)
    if images.nbytes <= memory_gb * GiB:
        return images[:]
    if progress is not None:
        progress.info(f"memory: the decoded images ({images.nbytes / GiB:.1f} GB) exceed {memory_gb:.1f} GB "
                      "(cache_memory_gb, or half of memory_gb): reading them from disk in pieces")
    return images


def health_cache(run: RunDir, images: np.ndarray, sizes: list | None, fingerprint: str, progress: Progress) -> dict[str, np.ndarray]:
    """What the data-health checks need from the pixels, computed once per decoded cache (RunDir.health_facts_path):
    property scores, perceptual hashes and pixel digests (health/). Re-scoring reads it: no decoding again."""
    path = run.health_facts_path(images.shape[1], fingerprint)
    if path.is_file():
        with np.load(path) as saved:
            return dict(saved)
    with progress.bar(len(images), "health") as bar:
        sizes = None if sizes is None else np.asarray(sizes, dtype=np.int64).reshape(-1, 2)
        out, digests, hashes = {}, [], []
        step = health.pixel_rows(images)
        for s in range(0, len(images), step):
            chunk = np.asarray(images[s : s + step])
            digests.append(health.pixel_digests(chunk, None if sizes is None else sizes[s : s + len(chunk)]))
            hashes.append(health.phash(chunk))
            bar.update(len(chunk))
        props = health.properties(images, sizes)
        out = {**{f"prop_{k}": v for k, v in props.items()}, "phash": np.concatenate(hashes or [np.zeros(0, np.uint64)]),
               "digest": np.concatenate(digests or [np.zeros((0, 16), np.uint8)])}
    buf = io.BytesIO()
    np.savez(buf, **out)
    write_bytes_atomic(path, buf.getvalue())
    return out
