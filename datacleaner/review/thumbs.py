"""Thumbnails and large views of listed images, made on demand and cached.  [I/O]

Every rendition is a JPEG (any format PIL reads, EXIF rotation applied, alpha on white), so
the browser shows TIFF, WebP or 16-bit PNG alike. Cached files are keyed by the source's
real path, size and modification time and the rendition's size: an edited image gets a new one.
"""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import numpy as np

from ..tables import write_bytes_atomic

THUMB = 192  # px, longest side of a grid thumbnail
LARGE = 1024  # px, longest side of the large view
QUALITY = 85


def render(src: Path, size: int) -> bytes | None:
    """JPEG bytes of `src` fitted into size x size (never enlarged beyond 4x), or None if unreadable."""
    from PIL import Image, ImageOps

    try:
        with Image.open(src) as im:
            im = ImageOps.exif_transpose(im)
            if im.mode in ("RGBA", "LA", "P"):
                im = im.convert("RGBA")
                canvas = Image.new("RGB", im.size, (255, 255, 255))
                canvas.paste(im, mask=im.getchannel("A"))
                im = canvas
            elif im.mode.startswith(("I", "F")):  # 16-bit or float: stretch to 8 bits for display
                a = np.asarray(im, dtype=np.float32)
                lo, hi = float(a.min()), float(a.max())
                im = Image.fromarray(((a - lo) * (255.0 / max(hi - lo, 1e-6))).astype(np.uint8))
            im = im.convert("RGB")
            w, h = im.size
            scale = min(size / max(w, h), 4.0)  # tiny images grow so they can be seen, crisply
            if scale != 1.0:
                resample = Image.Resampling.NEAREST if scale > 1 else Image.Resampling.LANCZOS
                im = im.resize((max(1, round(w * scale)), max(1, round(h * scale))), resample)
            out = io.BytesIO()
            im.save(out, "JPEG", quality=QUALITY)
            return out.getvalue()
    except Exception:  # any decoding problem: the caller shows a placeholder and the row's reason
        return None


def cache_key(src: Path, size: int) -> str:
    st = os.stat(src)
    return hashlib.sha256(f"{os.path.realpath(src)}\0{st.st_size}\0{st.st_mtime_ns}\0{size}".encode()).hexdigest()[:24]


def cached(src: Path, size: int, cache_dir: Path) -> tuple[bytes, str] | None:
    """(JPEG bytes, cache key usable as an ETag) of `src` at `size`, made once and kept in cache_dir;
    None if the file cannot be read as an image."""
    try:
        key = cache_key(src, size)
    except OSError:
        return None
    file = cache_dir / key[:2] / f"{key}.jpg"
    try:
        return file.read_bytes(), key
    except OSError:
        pass
    data = render(src, size)
    if data is None:
        return None
    try:
        write_bytes_atomic(file, data)
    except OSError:  # a read-only run directory: serve without caching
        pass
    return data, key
