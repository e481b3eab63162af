"""Where the independent jobs of a run execute: in this process, or as tasks on a Ray cluster.

A job is a top-level function plus keyword arguments (see `jobs.py`); it returns bytes or
arrays and writes nothing. The driver writes every result into the run directory as soon
as it arrives, so an interrupted run resumes from what finished, whichever executor ran it.

`Shared(obj)` marks an argument many jobs read (the decoded images): the Ray executor puts
it into the object store once; `Rows(array, idx)` marks a slice only one job reads: it is
cut (and, on Ray, shipped) only when that job is submitted, so memory stays bounded;
`Later(path)` is a file's bytes (a training state) read only when its job is submitted.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from .arrays import NpyFile
from .config import EXECUTORS
from .errors import DataCleanerError
from .progress import QUIET, Progress
from .runtime import release_freed_memory


@dataclass
class Job:
    fn: Callable[..., Any]  # a module-level function: fn(**kwargs, progress=...)
    kwargs: dict
    desc: str = ""
    cpus: float = 1.0  # Ray resources of the job (and its torch threads)
    gpus: float = 0.0


@dataclass
class Shared:
    value: Any


@dataclass
class Rows:
    array: Any  # (N, ...) array or memmap
    idx: np.ndarray  # (n,) rows of it

    def take(self) -> np.ndarray:
        return np.ascontiguousarray(self.array[self.idx])


@dataclass
class Later:
    path: Any  # a file whose bytes one job reads

    def take(self) -> bytes:
        return self.path.read_bytes()


class LocalExecutor:
    """Runs each job in this process, one after another, with the run's own progress bars."""

    name = "local"

    def __init__(self, progress: Progress = QUIET):
        self.progress = progress

    def run(self, jobs: list[Job]) -> Iterator[tuple[int, Any]]:
        for i, job in enumerate(jobs):
            kwargs = {k: _local_value(v) for k, v in job.kwargs.items()}
            result = job.fn(**kwargs, progress=self.progress)
            del kwargs
            release_freed_memory()  # what the job held (its model, runtime arenas, shard) goes back to the system
            yield i, result


def _local_value(v):
    if isinstance(v, Shared):
        return v.value
    if isinstance(v, (Rows, Later)):
        return v.take()
    return v


def _ray_call(fn, kwargs: dict, threads: float):
    """What a Ray task runs: resolve object references, set torch threads to the task's CPUs."""
    import ray

    from .runtime import configure

    configure(max(1, int(threads)))
    kwargs = {k: ray.get(v) if isinstance(v, ray.ObjectRef) else v for k, v in kwargs.items()}
    try:
        return fn(**kwargs, progress=QUIET)
    finally:
        del kwargs
        release_freed_memory()  # the worker lives on: what this job freed goes back to the system


class RayExecutor:
    """Runs jobs as Ray tasks with each job's CPUs and GPUs; a failed or lost task is retried
    `retries` times; results come back as they finish."""

    name = "ray"

    def __init__(self, address: str | None = None, *, retries: int = 3, progress: Progress = QUIET):
        try:
            import ray
        except ImportError:
            raise DataCleanerError("--executor ray needs Ray: pip install 'datacleaner[ray]' (or use --executor local)") from None
        self.ray, self.retries, self.progress = ray, retries, progress
        if not ray.is_initialized():
            kwargs: dict = dict(include_dashboard=False, logging_level="warning", log_to_driver=False)
            if address and address != "local":
                import datacleaner

                kwargs["runtime_env"] = {"py_modules": [os.path.dirname(datacleaner.__file__)]}  # this version's code
            try:
                ray.init(address=address, **kwargs)
            except Exception as exc:
                raise DataCleanerError(_connect_problem(address, exc)) from None
        self._shared: dict[int, Any] = {}
        self._remote = ray.remote(_ray_call)

    def _value(self, v):
        if isinstance(v, Shared):
            key = str(v.value.path) if isinstance(v.value, NpyFile) else id(v.value)  # a file goes in once per run
            if key not in self._shared:
                # an array read from disk in pieces (arrays.NpyFile) goes in whole, copied from a memory map into the
                # object store (no copy on the heap): nodes need no shared filesystem
                value = np.load(v.value.path, mmap_mode="r") if isinstance(v.value, NpyFile) else v.value
                self._shared[key] = (v.value, self.ray.put(value))  # keep the object alive with its ref
            return self._shared[key][1]
        if isinstance(v, (Rows, Later)):
            return self.ray.put(v.take())
        return v

    def _window(self, job: Job) -> int:
        cpus = self.ray.cluster_resources().get("CPU", 1.0)
        return max(2, int(2 * cpus / max(job.cpus, 1e-3)))

    def run(self, jobs: list[Job]) -> Iterator[tuple[int, Any]]:
        if not jobs:
            return
        ray = self.ray
        window = self._window(jobs[0])
        pending: dict[Any, int] = {}
        nxt = 0
        with self.progress.bar(len(jobs), f"ray: {jobs[0].desc.split(' ')[0]} jobs", unit="job") as bar:
            while nxt < len(jobs) or pending:
                while nxt < len(jobs) and len(pending) < window:
                    job = jobs[nxt]
                    kwargs = {k: self._value(v) for k, v in job.kwargs.items()}
                    ref = self._remote.options(
                        num_cpus=job.cpus, num_gpus=job.gpus, max_retries=self.retries, retry_exceptions=True,
                        name=job.desc[:60] or job.fn.__name__,
                    ).remote(job.fn, kwargs, job.cpus)
                    pending[ref] = nxt
                    nxt += 1
                done, _ = ray.wait(list(pending), num_returns=1)
                i = pending.pop(done[0])
                try:
                    result = ray.get(done[0])
                except Exception as exc:
                    for ref in pending:
                        ray.cancel(ref)
                    raise DataCleanerError(
                        f"Ray job '{jobs[i].desc}' failed after {self.retries} retries: {_last_line(exc)}; "
                        "finished jobs are saved: re-run the same command to continue"
                    ) from None
                bar.update(1)
                yield i, result


def _last_line(exc: Exception) -> str:
    lines = [x for x in str(exc).splitlines() if x.strip()]
    return (lines[-1] if lines else type(exc).__name__)[:300]


def _connect_problem(address: str | None, exc: BaseException) -> str:
    """One line on why ray.init failed, with what to do: Ray's token authentication refusing this
    process is told apart, since its own message is buried in a chained traceback."""
    where = address or "a new local instance"
    texts, seen = [], exc
    while seen is not None and len(texts) < 6:
        texts.append(str(seen))
        seen = seen.__cause__ or seen.__context__
    if any("InvalidAuthToken" in t or "AuthenticationError" in t for t in texts):
        token = os.environ.get("RAY_AUTH_TOKEN_PATH") or "~/.ray/auth_token"
        return (f"cannot connect to Ray at {where}: the cluster uses Ray's token authentication and refused this process's "
                f"token (InvalidAuthToken); give this process the cluster's token (RAY_AUTH_TOKEN, or its auth_token file "
                f"at {token}), or, if an earlier local Ray left that file behind where the cluster was started, move it "
                "away and restart the cluster (ray stop; ray start --head)")
    return (f"cannot connect to Ray at {where}: {texts[0].splitlines()[0][:200] if texts[0] else type(exc).__name__}; "
            "check --ray-address (ray://HOST:10001 or HOST:6379) and that `ray status` works there")


def make_executor(name: str, *, address: str | None = None, retries: int = 3, progress: Progress = QUIET):
    if name not in EXECUTORS:
        raise DataCleanerError(f"executor '{name}' is not one of {', '.join(EXECUTORS)}")
    if name == "ray":
        return RayExecutor(address, retries=retries, progress=progress)
    if address:
        raise DataCleanerError("--ray-address needs --executor ray")
    return LocalExecutor(progress)
