"""The memory budget, stage by stage: what a stage holds does not grow with the number of images.

Each test runs one stage on N and on 4N real digit scans (decoded at a photo's size) and measures the
peak resident memory of this process while it runs (Linux: the high-water mark, reset before the
stage). Old code that held a fixed number of images per step, or every image, fails them."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from datacleaner.arrays import NpyFile, NpyWriter, rows_per_piece
from datacleaner.progress import QUIET

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self")

MB = 2**20


def _peak_above_start(fn) -> float:
    """MB this process held at its peak while fn() ran, above what it held when fn started."""
    import gc

    from datacleaner.progress import peak_rss_mb, reset_peak_rss
    from datacleaner.runtime import release_freed_memory

    gc.collect()
    release_freed_memory()  # free pages this process's heap kept (earlier tests) would hide new allocations
    start = _rss_mb()
    assert reset_peak_rss()
    fn()
    return peak_rss_mb() - start


def _rss_mb() -> float:
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


@pytest.fixture(scope="module")
def scans(noisy_digits):
    """The 240 digit scans decoded at 160 px: (240, 160, 160, 3) uint8 (what a photo dataset's cache holds)."""
    from datacleaner.dataset import decode_images, find_labeled_images

    root, _ = noisy_digits
    labeled = find_labeled_images(root)
    images, problems = decode_images([labeled.absolute(i) for i in range(len(labeled.paths))], 160)
    assert not problems
    return images


def _cache(tmp_path, scans: np.ndarray, n: int) -> NpyFile:
    """A decoded cache of n images on disk (the scans over and over, each copy shifted so none repeats)."""
    path = tmp_path / f"images-{n}.npy"
    with NpyWriter(path, (n, *scans.shape[1:]), np.uint8, block_rows=1) as out:
        for s in range(0, n, len(scans)):
            copy = np.roll(scans, s // len(scans), axis=2)[: n - s]
            out.write(s, copy)
    return NpyFile(path)


def test_pixel_facts_hold_the_same_at_four_times_the_images(scans, tmp_path, monkeypatch):
    """The health checks' pixel facts (perceptual hashes, digests, property scores) of a cache read from
    disk: 2,400 images at 160 px (184 MB decoded) need no more memory than 600."""
    from datacleaner.health import facts as health_facts
    from datacleaner.pipeline.prepare import health_cache
    from datacleaner.pipeline.rundir import RunDir

    # steps of 27 images, so both sizes take many steps: the heap's reuse of freed steps settles within a
    # few of them (a run's first steps hold less than its later ones, whatever N), and N alone is compared
    monkeypatch.setattr(health_facts, "PIXEL_STEP_BYTES", 2 * MB)
    assert health_facts.pixel_rows(scans) == 27

    def peak(n: int, attempt: int) -> float:
        images, run = _cache(tmp_path, scans, n), RunDir(tmp_path / f"run{n}-{attempt}")
        held = _peak_above_start(lambda: health_cache(run, images, None, f"fp{n}", QUIET))
        facts = np.load(run.health_facts_path(160, f"fp{n}"))
        assert len(facts["phash"]) == n and len(np.unique(facts["digest"], axis=0)) == n  # every copy told apart
        return held

    peak(240, 0)  # what the first call pays once (imports, the allocator's arenas) is not the stage's to grow
    # the lower of two attempts each: one attempt's peak moves by MBs with what the heap held before
    peaks = {n: min(peak(n, a) for a in (1, 2)) for n in (600, 2400)}
    assert peaks[2400] < peaks[600] + 20, peaks
    assert peaks[2400] < 0.5 * 2400 * 160 * 160 * 3 / MB * 4, peaks  # far below the images' float copies


def test_a_head_fitted_in_pieces_holds_the_same_at_four_times_the_images(tmp_path, monkeypatch):
    """A frozen member's head under a small budget (head_job, as the clean job and Ray run it): 12,000
    images' features (2 views x 1,280, 117 MB as float32) need no more memory than 3,000."""
    from datacleaner import training
    from datacleaner.config import MemberConfig
    from datacleaner.jobs import head_in_memory, head_job

    monkeypatch.setattr(training, "HEAD_MAX_ITER", 3)  # memory does not depend on the iterations
    rng = np.random.default_rng(0)
    member = MemberConfig(arch="resnet10t", frozen=True, head_l2=0.01)
    budget = 16 * MB
    peaks = {}
    for n in (3000, 12000):
        labels = rng.integers(0, 10, n)
        path = tmp_path / f"features-{n}.npy"
        with NpyWriter(path, (n, 2, 1280), np.float16, block_rows=1) as out:
            for s in range(0, n, 1000):
                y = labels[s : s + 1000]
                out.write(s, (rng.normal(0, 1, (len(y), 2, 1280)) + y[:, None, None] * 0.1).astype(np.float16))
        features = NpyFile(path)
        assert not head_in_memory(n, features.shape, budget)
        heads = []
        peaks[n] = _peak_above_start(lambda: heads.append(head_job(
            member=member, num_classes=10, features=features, idx=np.arange(n), labels=labels, init=None, budget=budget)))
        assert heads[0]["W"].shape == (10, 1280) and heads[0]["stats"]["evaluations"] >= 3
    assert peaks[12000] < peaks[3000] + 20, peaks
    assert peaks[12000] < 12000 * 2 * 1280 * 4 / MB / 2, peaks


def test_index_reads_of_a_file_hold_one_piece(tmp_path):
    """NpyFile gathers index reads through one short-lived map per piece: reading half of a 256 MB file's
    rows by index leaves no more of the file resident than the rows returned (and a little)."""
    n, row = 4096, 64 * 1024
    path = tmp_path / "big.npy"
    with NpyWriter(path, (n, row), np.uint8, block_rows=1) as out:
        for s in range(0, n, 512):
            out.write(s, np.full((512, row), s // 512, dtype=np.uint8))
    f = NpyFile(path)
    idx = np.arange(0, n, 2)
    got = []
    peak = _peak_above_start(lambda: got.append(f[idx]))
    assert np.array_equal(got[0][:, 0], idx // 512)
    # the rows returned (128 MB) and one piece's mapped span (64 MB of the file, with the kernel's fault-around),
    # not the whole mapped file (256 MB) and two copies of the rows as before
    assert peak < idx.size * row / MB + 128, peak


@pytest.mark.parametrize("key", [slice(None), slice(3, 7), slice(-2, None), 4, -1, np.array([5, 0, 5]),
                                 np.arange(9) % 3 == 0, slice(None, None, 2)])
@pytest.mark.parametrize("order", ["C", "F"])
def test_npyfile_reads_what_numpy_reads(tmp_path, key, order):
    a = np.asarray(np.arange(9 * 6, dtype=np.float32).reshape(9, 6), order=order)
    np.save(tmp_path / "a.npy", a)
    np.testing.assert_array_equal(NpyFile(tmp_path / "a.npy")[key], a[key])


def test_npyfile_refuses_a_row_past_the_end(tmp_path):
    np.save(tmp_path / "a.npy", np.arange(10))
    with pytest.raises(IndexError, match="row 10 out of range"):
        NpyFile(tmp_path / "a.npy")[10]
    assert NpyFile(tmp_path / "a.npy")[-10] == 0


STAGES_SCRIPT = """
import json, numpy as np
from datacleaner.progress import Stopwatch
watch = Stopwatch()
with watch.stage("big"):
    block = np.ones(200 * 2**20 // 8)
    del block
with watch.stage("small"):
    np.ones(2**20 // 8)
print(json.dumps(watch.report()["peak_memory_mb"]))
"""


def test_stopwatch_charges_each_stage_its_peak():
    """summary.json's peak_memory_mb: a stage that holds 200 MB shows it, the stage after it does not (in a
    fresh process: what this one's heap already holds would serve the 200 MB without new pages)."""
    import json
    import subprocess

    done = subprocess.run([sys.executable, "-c", STAGES_SCRIPT], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    peaks = json.loads(done.stdout.strip().splitlines()[-1])
    assert peaks["big"] >= peaks["small"] + 150 and peaks["run"] == peaks["big"], peaks


def test_rows_per_piece_follows_the_budget():
    assert rows_per_piece(16 * MB, 10240) == 102 and rows_per_piece(1, 10240) == 64 and rows_per_piece(2**40, 1) == 65536
