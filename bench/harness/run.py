"""Running what the benchmarks measure: `clean` through the Python API, a member's model, a child
process per measurement, wall time and resident memory."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path

from paths import WEIGHTS


def timed(fn, *args, **kwargs):
    """(fn(*args, **kwargs), seconds it took)."""
    start = time.perf_counter()
    value = fn(*args, **kwargs)
    return value, time.perf_counter() - start


def run_clean(data: Path, out: Path, config=None, *, quiet: bool = True, **overrides):
    """(CleanResult, wall seconds) of `datacleaner.clean` (what the CLI calls): `config` a profile
    name, YAML path or CleanConfig, `overrides` config keys on top (e.g. weights_dir=WEIGHTS); quiet: no
    progress on stderr."""
    from datacleaner import clean

    from .internals import QUIET

    return timed(clean, data, out, config, progress=QUIET if quiet else None, **overrides)


def member_model(member, classes: int = 10, weights: Path = WEIGHTS):
    """(timm model in eval mode, preprocessing) of a member as `clean` builds it; a pretrained member
    loads its ImageNet weights from `weights` (../shared/weights)."""
    from .internals import CleanConfig, create_member_model, member_preprocess, resolve_weights

    path = resolve_weights(CleanConfig(members=[member], weights_dir=str(weights))).get(member.label)
    return create_member_model(member, classes, pretrained_path=path).eval(), member_preprocess(member)


class ChildFailed(SystemExit):
    """A child process exited non-zero; the message ends with its stderr."""


def child(script: str | Path, *args, cwd: Path | None = None) -> dict:
    """Run `python script args` in a fresh process (so its peak memory and imports are its own) and
    return the JSON object its last line of stdout holds; ChildFailed if it fails."""
    done = subprocess.run([sys.executable, str(script), *map(str, args)], capture_output=True, text=True, cwd=cwd)
    if done.returncode != 0:
        raise ChildFailed(f"bench child {Path(script).name} {' '.join(map(str, args))} failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def peak_rss_mb() -> float:
    """This process's peak resident memory so far (MB, getrusage)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def proc_status(keys, pid="self") -> dict[str, float]:
    """{key: MB} of /proc/<pid>/status fields such as VmRSS (resident now), VmHWM (the process image's
    peak), RssAnon (anonymous: what the process itself holds), RssFile (file-backed pages). Linux only."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in keys:
            out[key] = int(value.split()[0]) / 1024
    return out


class RssSampler(threading.Thread):
    """Peak resident memory (MB of `keys`) of a process, sampled every `every` seconds and charged to
    the stage running (`enter(stage)`): peaks = {stage: {key: MB}}, peak = the largest over stages."""

    def __init__(self, pid="self", every: float = 0.2, keys=("VmRSS", "RssAnon")):
        super().__init__(daemon=True)
        self.pid, self.every, self.keys, self.stage, self.peaks = pid, every, keys, "start", {}
        self.stopped = threading.Event()

    def sample(self) -> None:
        try:
            values = proc_status(self.keys, self.pid)
        except (OSError, ValueError):  # the process is gone
            return
        peak = self.peaks.setdefault(self.stage, dict.fromkeys(self.keys, 0.0))
        for k, v in values.items():
            peak[k] = max(peak[k], v)

    def run(self) -> None:
        while not self.stopped.is_set():
            self.sample()
            self.stopped.wait(self.every)

    def enter(self, stage: str) -> str:
        """From now on, memory counts for `stage`; returns the stage before."""
        self.sample()
        previous, self.stage = self.stage, stage
        return previous

    @property
    def peak(self) -> dict[str, float]:
        return {k: max((p[k] for p in self.peaks.values()), default=0.0) for k in self.keys}
