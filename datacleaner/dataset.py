"""Find labeled images (class folders or a CSV manifest), check and decode each one once.

Vocabulary: N images, C classes. `paths` are relative to the dataset root (POSIX
form); `labels` are indices into `classes`. Decoding is the validation: a file
that does not decode completely is reported as a problem with its reason and is
never trained on.
"""

from __future__ import annotations

import hashlib
import io
import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageOps

from .errors import DataCleanerError

DECODE_WINDOW = 1024  # files in flight at once while decoding
DECODE_WINDOW_BYTES = 64 * 2**20  # ... and no more decoded pixels than this in flight
IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


@dataclass
class LabeledImages:
    """A labeled dataset before decoding: where the images are and what they are called."""

    root: Path  # folder that `paths` are relative to
    paths: list[str]  # (N,) POSIX paths relative to root
    labels: np.ndarray  # (N,) int64 indices into classes
    classes: list[str]  # (C,) class names, sorted
    source: str = "folder"  # folder | csv
    notes: list[str] = field(default_factory=list)  # warnings worth printing (e.g. empty class folder)

    def absolute(self, i: int) -> Path:
        return self.root / self.paths[i]


def is_image_name(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS


def find_labeled_images(data: str | Path) -> LabeledImages:
    """A class-folder tree or a CSV manifest with columns path,label (paths relative to the CSV)."""
    data = Path(data)
    if not data.exists():
        raise DataCleanerError(f"{data} does not exist; pass a folder with one sub-folder per class or a CSV manifest")
    if data.is_file():
        return _read_manifest(data)
    return _scan_class_folders(data)


def _scan_class_folders(root: Path) -> LabeledImages:
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    notes, paths, names = [], [], []
    for class_dir in class_dirs:
        found = sorted(
            p.relative_to(root).as_posix()
            for p in class_dir.rglob("*")
            if p.is_file() and is_image_name(p) and not any(part.startswith(".") for part in p.relative_to(root).parts)
        )
        if not found:
            notes.append(f"class folder {class_dir} holds no images ({', '.join(sorted(IMAGE_EXTENSIONS))}); ignored")
            continue
        paths += found
        names += [class_dir.name] * len(found)
    if not paths:
        loose = [p.name for p in root.iterdir() if p.is_file() and is_image_name(p)][:3]
        hint = f" (found loose images such as {loose[0]}: move them into class sub-folders)" if loose else ""
        raise DataCleanerError(
            f"{root} holds no labeled images: expected one sub-folder per class with images inside{hint}"
        )
    classes = sorted(set(names))
    index = {c: i for i, c in enumerate(classes)}
    labels = np.array([index[n] for n in names], dtype=np.int64)
    return LabeledImages(root=root, paths=paths, labels=labels, classes=classes, source="folder", notes=notes)


def read_text_csv(path: Path, name: str | None = None) -> pd.DataFrame:
    """A CSV as text (every cell a string, empty cells ''); a one-line DataCleanerError naming it
    (`name`, default the path) when it cannot be parsed."""
    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataCleanerError(f"{name or path} is not a readable CSV: {str(exc).splitlines()[0]}") from None


def _read_manifest(csv_path: Path) -> LabeledImages:
    table = read_text_csv(csv_path, f"manifest {csv_path}")
    missing = {"path", "label"} - set(table.columns)
    if missing:
        raise DataCleanerError(
            f"manifest {csv_path} needs columns path,label; it has {', '.join(table.columns) or 'none'}"
        )
    blank = table.index[(table["path"].str.strip() == "") | (table["label"].str.strip() == "")]
    if len(blank):
        raise DataCleanerError(f"manifest {csv_path}: row {blank[0] + 2} has an empty path or label; fill it or delete the row")
    dupes = table["path"][table["path"].duplicated()]
    if len(dupes):
        raise DataCleanerError(f"manifest {csv_path}: path {dupes.iloc[0]} is listed twice; keep one row per image")
    root = csv_path.parent
    paths = [Path(p).as_posix() for p in table["path"]]
    names = [str(x).strip() for x in table["label"]]
    classes = sorted(set(names))
    index = {c: i for i, c in enumerate(classes)}
    labels = np.array([index[n] for n in names], dtype=np.int64)
    return LabeledImages(root=root, paths=paths, labels=labels, classes=classes, source="csv")


def load_rgb(path: str | Path, size: int | None = None) -> Image.Image:
    """Decode one image completely into 8-bit RGB with EXIF orientation applied.

    Grayscale, palette, alpha and 16-bit images are converted (alpha over white).
    With `size`, the shorter side is resized to `size` and the centre cropped square.
    Raises OSError/ValueError (with PIL's reason) for anything that does not decode.
    """
    return _load(path, size)[0]


def _load(path, size: int | None) -> tuple[Image.Image, tuple[int, int]]:
    """load_rgb's image and the file's own (width, height) as displayed (EXIF orientation applied)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with Image.open(path) as img:
            width, height = img.size  # before a JPEG draft shrinks it
            if size is not None and img.format == "JPEG":
                img.draft("RGB", (size, size))  # decode big JPEGs at reduced scale
            img.load()  # full decode: raises on truncated data
            img = ImageOps.exif_transpose(img)
            if width != height and (img.width > img.height) != (width > height):
                width, height = height, width  # the orientation turned it
            img = _to_rgb(img)
    if size is not None:
        img = ImageOps.fit(img, (size, size), method=Image.Resampling.BILINEAR)
    return img, (width, height)


def _to_rgb(img: Image.Image) -> Image.Image:
    mode = img.mode
    if mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if mode.startswith("I;16") or arr.max() > 255 else 255.0
        if mode == "F":
            top = 1.0 if arr.max() <= 1.0 else max(255.0, float(arr.max()))
        img = Image.fromarray(np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8), mode="L")
        mode = "L"
    if mode == "P" and "transparency" in img.info:
        img, mode = img.convert("RGBA"), "RGBA"
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB") if mode != "RGB" else img


def _decode_one(path: Path, size: int) -> tuple[np.ndarray | None, str | None, str, tuple[int, int]]:
    """(pixels or None, reason or None, sha256 prefix of the bytes, original (width, height) or
    (0, 0)) from one read of the file."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None, "file not found", "", (0, 0)
    except OSError as exc:
        return None, f"cannot read: {exc.strerror or exc}", "", (0, 0)
    checksum = hashlib.sha256(data).hexdigest()[:16]
    if not data:
        return None, "empty file (0 bytes)", checksum, (0, 0)
    try:
        img, original = _load(io.BytesIO(data), size)
        return np.asarray(img, dtype=np.uint8), None, checksum, original
    except Exception as exc:  # PIL raises many types for bad files; all mean "unreadable"
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if isinstance(exc, Image.UnidentifiedImageError):  # PIL names the in-memory buffer, not the file
            reason = "not an image format Pillow can read"
        return None, f"cannot decode: {reason}", checksum, (0, 0)


def decode_images(
    files: list[Path], size: int, out: np.ndarray | None = None, *, workers: int | None = None, progress=None,
    checksums: list[str] | None = None, sizes: list[tuple[int, int]] | None = None,
) -> tuple[np.ndarray, dict[int, str]]:
    """Decode every file once into `out` (N, size, size, 3) uint8 (allocated when None).

    Returns the array and {index: reason} for files that could not be decoded (their
    rows stay zero). `progress` is called with 1 per file done. A `checksums` list is
    filled with each file's sha256 prefix (from the same read), for `apply` to check; a
    `sizes` list with each file's own (width, height), (0, 0) when unreadable.
    """
    if out is None:
        out = np.zeros((len(files), size, size, 3), dtype=np.uint8)
    problems: dict[int, str] = {}
    workers = workers or min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=workers) as pool:  # PIL releases the GIL while decoding
        step = max(16, min(DECODE_WINDOW, DECODE_WINDOW_BYTES // (size * size * 3)))
        for start in range(0, len(files), step):  # bounded: no million pending futures, no gigabytes of pixels
            window = files[start : start + step]
            for i, (arr, reason, checksum, original) in enumerate(pool.map(lambda f: _decode_one(f, size), window), start):
                if checksums is not None:
                    checksums.append(checksum)
                if sizes is not None:
                    sizes.append(original)
                if reason is None:
                    out[i] = arr
                else:
                    problems[i] = reason
                if progress is not None:
                    progress(1)
    return out, problems


def check_class_sizes(labels: np.ndarray, classes: list[str], usable: np.ndarray, folds: int, where: Path) -> None:
    """Raise a one-line error when the readable images cannot fill the fold plan."""
    counts = np.bincount(labels[usable], minlength=len(classes))
    present = [c for c, n in zip(classes, counts) if n > 0]
    if len(present) < 2:
        raise DataCleanerError(
            f"{where}: need at least 2 classes with readable images, found {len(present)} "
            f"({', '.join(present) or 'none'}); add images of other classes"
        )
    small = [(c, int(n)) for c, n in zip(classes, counts) if n < folds]
    if small:
        listing = ", ".join(f"'{c}' has {n}" for c, n in small)
        raise DataCleanerError(
            f"{where}: {listing} readable image(s); every class needs at least {folds} for {folds} folds. "
            f"Add images, merge or remove the class, or lower --folds"
        )


def find_pool_images(pool: str | Path) -> tuple[Path, list[str]]:
    """Unlabeled pool: a folder (searched recursively) or a CSV with a `path` column (relative to the CSV).
    Returns (root, POSIX paths relative to root)."""
    pool = Path(pool)
    if not pool.exists():
        raise DataCleanerError(f"pool {pool} does not exist; pass a folder of images or a CSV with a path column")
    if pool.is_file():
        table = read_text_csv(pool, f"pool list {pool}")
        if "path" not in table.columns:
            raise DataCleanerError(f"pool list {pool} needs a 'path' column; it has {', '.join(table.columns) or 'none'}")
        paths = list(dict.fromkeys(Path(p).as_posix() for p in table["path"] if p.strip()))
        root = pool.parent
    else:
        root = pool
        paths = sorted(
            p.relative_to(pool).as_posix() for p in pool.rglob("*")
            if p.is_file() and is_image_name(p) and not any(part.startswith(".") for part in p.relative_to(pool).parts)
        )
    if not paths:
        raise DataCleanerError(f"pool {pool} holds no images ({', '.join(sorted(IMAGE_EXTENSIONS))})")
    return root, paths
