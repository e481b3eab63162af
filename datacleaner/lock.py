"""One command at a time on a run directory or a dataset.  [I/O]

`clean`, `train`, `select` and `rescore` hold an exclusive lock on their run directory
(`RUN_DIR/.datacleaner.lock`), `apply --yes` and `undo` on the dataset
(`DATA/.datacleaner/lock`). A second command finds the lock held and stops at once, naming
the process that holds it, before it writes anything. The lock is the kernel's (flock): it
ends with its process, so a lock left by a killed process is simply taken over.
"""

from __future__ import annotations

import fcntl
import json
import os
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from .errors import DataCleanerError

RUN_LOCK = ".datacleaner.lock"


def _holder(fd: int) -> dict:
    """What the holder wrote into the lock file ({} if nothing yet)."""
    os.lseek(fd, 0, os.SEEK_SET)
    try:
        return json.loads(os.read(fd, 4096).decode() or "{}")
    except ValueError:
        return {}


@contextmanager
def exclusive(lock_file: str | Path, *, what: str | None = None, on_takeover=None):
    """Hold `lock_file` (created with its folder) for the block; raise DataCleanerError at once
    if another process holds it. `what` names the thing locked in the message (default: the
    lock file's folder); `on_takeover(message)` hears about a lock left by a dead process."""
    lock_file = Path(lock_file)
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            for _ in range(10):  # the holder writes its details just after it takes the lock
                if holder:
                    break
                time.sleep(0.05)
                holder = _holder(fd)
            raise DataCleanerError(
                f"{what or lock_file.parent} is in use by process {holder.get('pid', '?')} since "
                f"{holder.get('since', '?')} ({holder.get('command', 'another datacleaner command')}); "
                "wait for it to finish, or stop it, then run again"
            ) from None
        left = _holder(fd)
        if left and on_takeover is not None:  # a holder that ends normally empties the file
            on_takeover(f"note: took over the lock left by process {left.get('pid', '?')} (no longer running)")
        me = {"pid": os.getpid(), "since": time.strftime("%Y-%m-%d %H:%M:%S"), "command": " ".join(_command())}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(me).encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _command() -> list[str]:
    """This process's command line, short: `datacleaner clean DATA ...`."""
    args = [Path(sys.argv[0]).name, *sys.argv[1:]] if sys.argv and sys.argv[0] else ["python"]
    return [("datacleaner" if a in ("__main__.py", "-m") else a) for a in args][:8]


def run_lock(run_dir: str | Path, progress=None):
    """The lock of a run directory (clean, train, select, rescore)."""
    return exclusive(Path(run_dir) / RUN_LOCK, what=str(run_dir), on_takeover=progress.info if progress else None)
