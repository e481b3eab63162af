"""Progress bars and messages on stderr, with quiet (0), normal (1) and verbose (2) levels."""

from __future__ import annotations

import sys
import time
from contextlib import contextmanager

from tqdm.auto import tqdm


class Progress:
    def __init__(self, level: int = 1):
        self.level = level

    def bar(self, total: int, desc: str, unit: str = "img"):
        return tqdm(
            total=total, desc=desc, unit=unit, disable=self.level == 0, leave=self.level >= 2,
            file=sys.stderr, dynamic_ncols=True, mininterval=0.5,
        )

    def info(self, message: str) -> None:
        if self.level >= 1:
            tqdm.write(message, file=sys.stderr)

    def debug(self, message: str) -> None:
        if self.level >= 2:
            tqdm.write(message, file=sys.stderr)


QUIET = Progress(0)


class Stopwatch:
    """Wall seconds and amounts of work per stage of a run (summary.json: timings, work)."""

    def __init__(self):
        self.seconds: dict[str, float] = {}
        self.work: dict[str, int] = {}

    @contextmanager
    def stage(self, name: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start

    def count(self, name: str, amount: int) -> None:
        self.work[name] = self.work.get(name, 0) + int(amount)

    def report(self) -> dict:
        return {"timings_s": {k: round(v, 2) for k, v in self.seconds.items()}, "work": dict(self.work)}
