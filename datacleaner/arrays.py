"""Arrays larger than memory: .npy files read in pieces, and the memory budget.  [numpy + I/O]

A long-lived memory map keeps every page it has read in the process's resident memory
until it is closed (the kernel may drop them, but they count, and they crowd out other
work). NpyFile maps its file only for the length of one read, so what stays resident is
what the caller keeps.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

GiB = 2**30
DEFAULT_SHARE = 0.25  # of the machine's physical memory, when memory_gb is not set
MAP_PIECE_BYTES = 32 * 2**20  # rows gathered through one memory map at a time (index reads)
# what a run holds per image whatever the budget: labels, scores, compact features, neighbours, tables
# (bench/memory.py: 1.7 GB at a million images)
PER_IMAGE_BYTES = 2048


def machine_memory() -> int:
    """Physical memory of this machine in bytes (8 GiB if the system does not say)."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 8 * GiB


def memory_budget(memory_gb: float | None) -> int:
    """Bytes a stage may hold in its large arrays: `memory_gb` GiB, or a quarter of the machine's memory."""
    return int(memory_gb * GiB) if memory_gb is not None else int(DEFAULT_SHARE * machine_memory())


def rows_per_piece(budget: int, row_bytes: int) -> int:
    """Rows of `row_bytes` each to read at a time: a sixteenth of the budget, 64 to 65,536 rows."""
    return int(min(65536, max(64, budget // 16 // max(row_bytes, 1))))


def scratch_array(folder: Path, name: str, shape: tuple[int, ...]) -> np.ndarray:
    """A float32 array of zeros in a file under `folder`, removed from the directory at once: the open
    map keeps its space until the array is dropped, and nothing is left behind."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}-{os.getpid()}.npy"
    array = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=shape)
    path.unlink()
    return array


class NpyFile:
    """A .npy file's array, read by indexing (slices, index arrays) one piece at a time."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        m = np.load(self.path, mmap_mode="r", allow_pickle=False)
        self.shape, self.dtype = m.shape, m.dtype
        del m

    def __len__(self) -> int:
        return self.shape[0]

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape)) * self.dtype.itemsize

    def __getitem__(self, key) -> np.ndarray:
        if isinstance(key, slice) and key.step in (None, 1):
            return self._read_rows(*key.indices(self.shape[0])[:2])
        if isinstance(key, (int, np.integer)):
            i = int(key) + (self.shape[0] if key < 0 else 0)
            if not 0 <= i < self.shape[0]:
                raise IndexError(f"row {int(key)} out of range for {self.shape[0]} rows ({self.path.name})")
            return self._read_rows(i, i + 1)[0]
        idx = np.asarray(key)
        if idx.dtype == bool:
            idx = np.flatnonzero(idx)
        if idx.ndim != 1 or idx.dtype.kind not in "iu":
            return self._mapped(key)
        out = np.empty((len(idx), *self.shape[1:]), dtype=self.dtype)
        step = max(1, MAP_PIECE_BYTES // max(self.row_bytes, 1))
        for s in range(0, len(idx), step):  # a fresh map per piece: what it touched is released with it
            m = np.load(self.path, mmap_mode="r", allow_pickle=False)
            np.take(m, idx[s : s + step], axis=0, out=out[s : s + step])
            del m
        return out

    @property
    def row_bytes(self) -> int:
        return int(np.prod(self.shape[1:], dtype=np.int64)) * self.dtype.itemsize

    def _read_rows(self, start: int, stop: int) -> np.ndarray:
        """Rows start..stop read with plain file reads: no pages of the file stay mapped into this process."""
        if self._offset() is None:
            return self._mapped(slice(start, stop))
        out = np.empty((max(stop - start, 0), *self.shape[1:]), dtype=self.dtype)
        if len(out):
            with open(self.path, "rb") as f:
                f.seek(self._offset() + start * self.row_bytes)
                f.readinto(memoryview(out.reshape(-1).view(np.uint8)))
        return out

    def _offset(self) -> int | None:
        """Where the rows start in the file; None for a Fortran-ordered array (read through a map)."""
        if not hasattr(self, "_header"):
            with open(self.path, "rb") as f:
                version = np.lib.format.read_magic(f)
                read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
                _, fortran, _ = read(f)
                self._header = None if fortran and self.ndim > 1 else f.tell()
        return self._header

    def _mapped(self, key) -> np.ndarray:
        m = np.load(self.path, mmap_mode="r", allow_pickle=False)
        try:
            return np.array(m[key])
        finally:
            del m

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        out = self[:]
        return out if dtype is None else out.astype(dtype)


class NpyWriter:
    """Writes a .npy file of `shape` row by row (rows set in increasing order, through `w[i] = row`), a
    block of rows at a time: the file is never mapped, so memory holds one block. Rows never set stay
    zero. Use as a context manager; the file is complete when it closes (write to a temporary name and
    rename it after)."""

    def __init__(self, path: str | Path, shape: tuple[int, ...], dtype, block_rows: int = 4096):
        self.path, self.shape, self.dtype = Path(path), tuple(shape), np.dtype(dtype)
        self.block = np.zeros((max(1, block_rows), *self.shape[1:]), dtype=self.dtype)
        self.start = 0  # first row of the block
        self.dirty = False  # rows set in the block since it was last written
        self.file = open(self.path, "wb")
        np.lib.format.write_array_header_2_0(
            self.file, {"descr": np.lib.format.dtype_to_descr(self.dtype), "fortran_order": False, "shape": self.shape})

    def __setitem__(self, i: int, row) -> None:
        if i < self.start:
            raise ValueError(f"rows must be written in order: row {i} after {self.start}")
        while i >= self.start + len(self.block):
            self._flush(len(self.block))
        self.block[i - self.start] = row
        self.dirty = True

    def write(self, start: int, rows: np.ndarray) -> None:
        """Rows start .. start + len(rows), written straight to the file when no single rows are pending."""
        if self.dirty or start < self.start or start + len(rows) > self.shape[0]:
            for k in range(len(rows)):
                self[start + k] = rows[k]
            return
        if start > self.start:  # rows never set: zero
            self.file.write(np.zeros((start - self.start, *self.shape[1:]), dtype=self.dtype).tobytes())
        self.file.write(memoryview(np.ascontiguousarray(rows, dtype=self.dtype)).cast("B"))
        self.start = start + len(rows)

    def _flush(self, n: int) -> None:
        n = min(n, self.shape[0] - self.start)
        self.file.write(self.block[:n].tobytes())
        self.block[:] = 0
        self.start += n
        self.dirty = False

    def close(self) -> None:
        while self.start < self.shape[0]:
            self._flush(len(self.block))
        self.file.close()

    def __enter__(self) -> NpyWriter:
        return self

    def __exit__(self, kind, *_) -> None:
        if kind is None:
            self.close()
        else:
            self.file.close()
