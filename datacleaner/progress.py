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
        self._inner: list[float] = []  # seconds of the stages nested in each open stage

    @contextmanager
    def stage(self, name: str):
        """Time a stage; a stage nested in another counts as its own, not twice."""
        start = time.perf_counter()
        self._inner.append(0.0)
        try:
            yield
        finally:
            total, inner = time.perf_counter() - start, self._inner.pop()
            self.seconds[name] = self.seconds.get(name, 0.0) + total - inner
            if self._inner:
                self._inner[-1] += total

    def count(self, name: str, amount: int) -> None:
        self.work[name] = self.work.get(name, 0) + int(amount)

    def report(self) -> dict:
        return {"timings_s": {k: round(v, 2) for k, v in self.seconds.items()}, "work": dict(self.work)}
