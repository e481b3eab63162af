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


def peak_rss_mb() -> float | None:
    """This process's peak resident memory (MB) since the last reset_peak_rss(); None off Linux."""
    try:
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def reset_peak_rss() -> bool:
    """Start the peak over from the memory resident now (Linux: clear_refs 5); False where it cannot."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


class Stopwatch:
    """Wall seconds, amounts of work and peak resident memory per stage of a run (summary.json:
    timings_s, work, peak_memory_mb). A stage's peak is the most this process held while it ran,
    everything loaded before it included (models, runtime); Linux only, empty elsewhere."""

    def __init__(self, on_stage_end=None):
        self.on_stage_end = on_stage_end  # called as each stage ends (e.g. runtime.release_freed_memory)
        self.seconds: dict[str, float] = {}
        self.work: dict[str, int] = {}
        self.peaks: dict[str, float] = {}
        self._inner: list[float] = []  # seconds of the stages nested in each open stage
        self._open: list[str] = []
        self._measure = reset_peak_rss()
        self._peak = 0.0  # the whole run's

    def _fold_peak(self) -> None:
        """Charge the peak since the last reset to every open stage (and the run), then reset it."""
        if not self._measure:
            return
        peak = peak_rss_mb() or 0.0
        self._peak = max(self._peak, peak)
        for name in self._open:
            self.peaks[name] = max(self.peaks.get(name, 0.0), peak)
        reset_peak_rss()

    @contextmanager
    def stage(self, name: str):
        """Time a stage; a stage nested in another counts as its own, not twice."""
        self._fold_peak()
        start = time.perf_counter()
        self._inner.append(0.0)
        self._open.append(name)
        try:
            yield
        finally:
            if self.on_stage_end is not None:
                self.on_stage_end()
            self._fold_peak()
            self._open.pop()
            total, inner = time.perf_counter() - start, self._inner.pop()
            self.seconds[name] = self.seconds.get(name, 0.0) + total - inner
            if self._inner:
                self._inner[-1] += total

    def count(self, name: str, amount: int) -> None:
        self.work[name] = self.work.get(name, 0) + int(amount)

    def report(self) -> dict:
        self._fold_peak()
        out = {"timings_s": {k: round(v, 2) for k, v in self.seconds.items()}, "work": dict(self.work)}
        if self._measure:
            out["peak_memory_mb"] = {**{k: round(v) for k, v in self.peaks.items()}, "run": round(self._peak)}
        return out
