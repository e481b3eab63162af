"""Snapshot members: a cosine_restarts member with `snapshots: S` judges as S members of its own
(`<name>@c<cycle>`), in `clean`, after a kill, in a committee bundle and in `select`."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import TINY_CONFIG

SNAPSHOT_MEMBER = {"arch": "resnet10t", "img_size": 32, "epochs": 6, "batch_size": 32, "lr": 0.003,
                   "schedule": "cosine_restarts", "restart_epochs": 2, "warmup_epochs": 1, "snapshots": 2}


def _config(path, **member):
    cfg = {**TINY_CONFIG, "members": [{**SNAPSHOT_MEMBER, **member}]}
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture(scope="module")
def snapshot_run(noisy_digits, tmp_path_factory):
    """A finished `clean` of the noisy digits by one member with 3 cycles and 2 snapshots: (config, run dir)."""
    from datacleaner import clean

    base = tmp_path_factory.mktemp("snap")
    config = _config(base / "snap.yaml")
    clean(noisy_digits[0], base / "run", config)
    return config, base / "run"


def test_snapshots_judge_as_members_of_their_own(snapshot_run):
    _, run = snapshot_run
    names = sorted(p.name for p in (run / "members").iterdir())
    assert [n.split("-")[0] + "-" + n.split("-")[1] for n in names] == [
        f"r{r}-resnet10t@c{c}" for r in range(3) for c in (2, 3)]  # the last 2 of 3 cycles, no leftover states
    summary = json.loads((run / "summary.json").read_text())
    assert summary["members"] == {"resnet10t@c2": 0.5, "resnet10t@c3": 0.5}  # the member's weight split evenly
    scores = pd.read_csv(run / "scores.csv", keep_default_na=False, dtype=str)
    assert {"vote_resnet10t@c2", "vote_resnet10t@c3"} <= set(scores.columns)
    part = pd.read_csv(run / "manifest.csv")["part"].to_numpy()
    given = pd.read_csv(run / "manifest.csv")["label"].to_numpy()
    for r in range(3):  # distinct members: each round's two snapshots give different logits
        a, b = (np.load(next((run / "logits").glob(f"r{r}-resnet10t@c{c}-*.npy"))) for c in (2, 3))
        assert a.shape == b.shape and np.abs(a - b).mean() > 0.05
        for logits in (a, b):  # ... and each learnt the digits (4 classes, 10% of the labels flipped)
            assert (logits.mean(1).argmax(-1) == given[part == r]).mean() > 0.6


def test_rescore_weights_a_snapshot_or_the_whole_member(snapshot_run, tmp_path):
    import shutil

    from datacleaner import rescore

    _, run = snapshot_run
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    last = rescore(copy, weights={"resnet10t@c2": 0.0})
    assert last.summary["members"] == {"resnet10t@c2": 0.0, "resnet10t@c3": 0.5}
    only_c3 = np.load(next((copy / "logits").glob("r0-resnet10t@c3-*.npy"))).mean(1).argmax(-1)
    judged = pd.read_csv(copy / "manifest.csv")["part"].to_numpy() == 0
    table = last.scores[judged & (last.scores["issue"] != "unreadable").to_numpy()]
    classes = ["0", "1", "3", "7"]
    assert [classes[k] for k in only_c3] == table["suggested_label"].astype(str).tolist()  # c3 alone decides
    both = rescore(copy, weights={"resnet10t": 2.0})
    assert both.summary["members"] == {"resnet10t@c2": 0.0, "resnet10t@c3": 2.0}  # shares kept, total rescaled
    with pytest.raises(Exception, match="resnet10t@c1"):
        rescore(copy, weights={"resnet10t@c1": 1.0})


def test_kill_between_cycles_resumes_without_retraining_finished_cycles(noisy_digits, snapshot_run, tmp_path, monkeypatch):
    from datacleaner import clean
    from datacleaner.pipeline import tuned

    config, finished_run = snapshot_run
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "datacleaner", "clean", str(noisy_digits[0]), "-c", str(config), "--out", str(out), "-q"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.time() + 240
    while time.time() < deadline and not list((out / "members").glob("*.state")):
        assert proc.poll() is None, proc.stdout.read().decode()
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    states = [re.match(r"r(\d)-resnet10t-\w+\.c(\d)\.state$", p.name) for p in (out / "members").glob("*.state")]
    done = {(int(m[1]), c) for m in states for c in range(1, int(m[2]) + 1)}  # (round, cycle) finished at the kill
    assert done and not (out / "review.csv").exists()

    trained = []
    real_job = tuned.train_cycle_job

    def counting_job(**kwargs):
        trained.append((int(kwargs["desc"].split()[1].split("/")[0]) - 1, kwargs["cycle"]))
        return real_job(**kwargs)

    monkeypatch.setattr(tuned, "train_cycle_job", counting_job)
    result = clean(noisy_digits[0], out, config)
    assert trained and not done & set(trained)  # finished cycles were not trained again
    assert len(trained) == 9 - len(done)
    assert result.summary["members_trained"] == 3 - sum(1 for r in range(3) if (r, 3) in done)
    assert not list((out / "members").glob("*.state"))
    for path in (finished_run / "logits").iterdir():  # the same logits as the uninterrupted run, bit for bit
        np.testing.assert_array_equal(np.load(out / "logits" / path.name), np.load(path), err_msg=path.name)


def test_bundle_round_trip_and_select_keep_snapshots(noisy_digits, tmp_path):
    from datacleaner import select, train
    from datacleaner.committee import Committee
    from datacleaner.dataset import decode_images

    from conftest import write_digit_pool

    config = _config(tmp_path / "snap.yaml", epochs=4, snapshots=2)
    fitted = train(noisy_digits[0], tmp_path / "committee", config)
    assert [j.label for j in fitted.judges_] == ["resnet10t@c1", "resnet10t@c2"]
    loaded = Committee.load(tmp_path / "committee")
    assert [j.label for j in loaded.judges_] == ["resnet10t@c1", "resnet10t@c2"]
    assert loaded.weights_.tolist() == [0.5, 0.5]
    pool, truth = write_digit_pool(tmp_path / "pool", count=24, cameras=1)
    files = [pool / p for p in truth]
    images, _ = decode_images(files, loaded.cache_size_)
    a, b = fitted.predict_outputs(images), loaded.predict_outputs(images)  # (n, M, V, C)
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    assert np.abs(b[:, 0] - b[:, 1]).mean() > 0.05  # two distinct members

    again = train(noisy_digits[0], tmp_path / "committee", config)  # cached: nothing retrained, same weights
    np.testing.assert_array_equal(again.predict_outputs(images), a)

    prod = pd.DataFrame({"path": list(truth), "label": list(truth.values()), "score": 0.5})
    prod.to_csv(tmp_path / "prod.csv", index=False)
    sel = select(pool, tmp_path / "committee", tmp_path / "prod.csv", tmp_path / "sel", budget=10)
    table = pd.read_csv(tmp_path / "sel" / "selection.csv", dtype=str, keep_default_na=False)
    assert {"vote_resnet10t@c1", "vote_resnet10t@c2"} <= set(table.columns) and len(sel.selection) > 0


@pytest.mark.parametrize("change, message", [
    ({"schedule": "cosine"}, "needs schedule: cosine_restarts"),
    ({"snapshots": 4}, "only 3 cycle"),
    ({"epochs": 7}, "multiple of restart_epochs"),
    ({"frozen": True, "pretrained_file": "w.safetensors"}, "fine-tuned member"),
    ({"snapshot_weights": [1.0]}, "snapshot_weights needs 2 numbers"),
    ({"warmup_epochs": 2.0}, "warmup_epochs"),
])
def test_snapshot_config_errors_say_what_to_change(change, message):
    from datacleaner.config import load_config
    from datacleaner.errors import DataCleanerError

    cfg = {**TINY_CONFIG, "members": [{**SNAPSHOT_MEMBER, **change}]}
    with pytest.raises(DataCleanerError, match=message):
        load_config(_write(cfg))


def _write(cfg) -> str:
    import tempfile

    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        yaml.safe_dump(cfg, f)
    return f.name
