"""Process settings that make the CPU path fast: thread counts and the allocator.  [torch]

Measured on 2 cores (README, bench/speed.py): glibc returns every large tensor buffer to
the kernel with munmap and faults it back in on the next batch, so the kernel spent more
time zeroing pages than the model spent computing. Keeping freed memory in the heap
(no mmap for allocations, no trimming) made TTA prediction 1.8x faster. The heap then only
grows: what a job or a stage freed is handed back to the kernel at its end (release_freed_memory),
so the process's memory follows what the stage running holds, not the most any stage held.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import sys

M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4  # glibc mallopt parameters


@functools.cache
def _glibc():
    """The C library when it is glibc on Linux (its allocator takes mallopt and malloc_trim), else None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None
    except OSError:  # not glibc (musl, ...): leave the allocator alone
        return None


def keep_freed_memory() -> bool:
    """Ask glibc to serve allocations from the heap and keep freed memory for reuse (Linux only).
    Returns True if the allocator took the settings."""
    libc = _glibc()
    return libc is not None and bool(libc.mallopt(M_MMAP_MAX, 0)) and bool(libc.mallopt(M_TRIM_THRESHOLD, 2**31 - 1))


def release_freed_memory() -> None:
    """Hand the heap's free pages back to the kernel (glibc malloc_trim; elsewhere nothing): called when a
    job or a stage ends, so memory kept for reuse inside a hot loop does not outlive it."""
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)


def configure(threads: int = 0) -> None:
    """torch uses `threads` cores (0 = all); OpenCV, inside the augmentation, runs single-threaded so
    the two do not oversubscribe the cores; the allocator keeps freed memory."""
    import cv2
    import torch

    torch.set_num_threads(threads or os.cpu_count() or 1)
    cv2.setNumThreads(1)
    keep_freed_memory()
