"""The Ray executor against a real Ray instance on loopback, started by the test: the same results
as the local executor, jobs retried after failures, nothing finished redone."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

ray = pytest.importorskip("ray")

from conftest import TINY_CONFIG  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory):
    """`ray start --head` on 127.0.0.1 with 2 CPUs; yields its address, stops it after."""
    ray_bin = Path(sys.executable).parent / "ray"
    port = _free_port()
    temp = tmp_path_factory.mktemp("ray")
    env_cmd = [str(ray_bin), "start", "--head", "--node-ip-address=127.0.0.1", f"--port={port}", "--num-cpus=2",
               "--num-gpus=0", "--include-dashboard=false", "--disable-usage-stats", f"--temp-dir={temp}"]
    # started from a home of its own: a ~/.ray/auth_token that a local ray.init() left behind would turn on token
    # authentication for this cluster, and the test's processes would be refused (test_ray_auth.py)
    home = tmp_path_factory.mktemp("ray-home")
    env = {**os.environ, "HOME": str(home)}
    started = subprocess.run(env_cmd, capture_output=True, text=True, timeout=180, env=env)
    assert started.returncode == 0, started.stderr[-2000:]
    try:
        yield f"127.0.0.1:{port}"
    finally:
        if ray.is_initialized():
            ray.shutdown()
        subprocess.run([str(ray_bin), "stop", "--force"], capture_output=True, timeout=120, env=env)


def _config(tmp_path: Path) -> Path:
    cfg = {
        **TINY_CONFIG, "threads": 1, "shard_images": 70,
        "members": [{**TINY_CONFIG["members"][0], "epochs": 2, "cpus": 1},  # and one with 2 snapshots:
                    {**TINY_CONFIG["members"][1], "epochs": 2, "cpus": 1, "schedule": "cosine_restarts", "restart_epochs": 1,
                     "warmup_epochs": 0.5, "snapshots": 2}],
    }
    path = tmp_path / "ray.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "datacleaner", *args], capture_output=True, text=True, timeout=900)


def test_ray_clean_equals_local_and_resumes(few_digits, ray_cluster, tmp_path):
    from datacleaner import clean  # the job the command runs, in this process: one start-up for three runs

    data, _ = few_digits
    config = _config(tmp_path)
    clean(data, tmp_path / "local", config)
    # on Ray with a memory budget far below the data: the decoded cache goes to the object store from the file,
    # the probabilities are averaged on disk; the scores stay the same
    clean(data, tmp_path / "ray", config, executor="ray", ray_address=ray_cluster, memory_gb=0.000001)

    a = pd.read_csv(tmp_path / "local" / "scores.csv", keep_default_na=False)
    b = pd.read_csv(tmp_path / "ray" / "scores.csv", keep_default_na=False)
    assert list(a.columns) == list(b.columns) and len(a) == len(b) >= 120
    for col in a.columns:
        if a[col].dtype.kind == "f":
            np.testing.assert_allclose(a[col], b[col], atol=1e-5, err_msg=col)
        else:
            assert a[col].tolist() == b[col].tolist(), col
    assert (tmp_path / "ray" / "review.csv").read_text() == (tmp_path / "local" / "review.csv").read_text()
    assert {"vote_regnetx_002@c1", "vote_regnetx_002@c2"} <= set(a.columns)
    # the same cached files (3 rounds x 3 judges: a member and 2 snapshots): weights and logits under the same keys
    for sub in ("members", "logits"):
        names = sorted(p.name for p in (tmp_path / "local" / sub).iterdir())
        assert names == sorted(p.name for p in (tmp_path / "ray" / sub).iterdir()) and len(names) == 9

    # finished work is never redone: drop one round's logits, keep its weights; only it is judged again
    victim = sorted((tmp_path / "ray" / "logits").iterdir())[0]
    victim.unlink()
    summary = clean(data, tmp_path / "ray", config, executor="ray", ray_address=ray_cluster).summary
    ray.shutdown()
    assert summary["members_trained"] == 0 and summary["judgements_reused"] == 8
    assert summary["executor"] == {"features": "none", "training": "ray", "heads": "none"}  # no pretrained backbone
    assert victim.is_file()
    c = pd.read_csv(tmp_path / "ray" / "scores.csv", keep_default_na=False)
    assert c["label_quality"].tolist() == a["label_quality"].tolist()  # rounded to 5 places, '' when unreadable



def flaky_square(*, x: int, marker: str, progress=None) -> int:
    """Fails the first time it runs for `x` (as a crashed worker would), succeeds after."""
    path = Path(marker) / f"{x}"
    with path.open("a") as f:
        f.write("x")
    if len(path.read_text()) == 1:
        raise RuntimeError(f"simulated failure of job {x}")
    return x * x


def always_fails(*, progress=None) -> int:
    raise ValueError("this job cannot succeed")


def test_ray_retries_failed_jobs_then_reports(ray_cluster, tmp_path):
    from datacleaner.errors import DataCleanerError
    from datacleaner.executors import Job, RayExecutor

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers do not import the tests
    executor = RayExecutor(ray_cluster, retries=2)
    jobs = [Job(flaky_square, {"x": x, "marker": str(tmp_path)}, desc=f"square {x}", cpus=1) for x in range(4)]
    results = dict(executor.run(jobs))
    assert results == {0: 0, 1: 1, 2: 4, 3: 9}
    assert all((tmp_path / str(x)).read_text() == "xx" for x in range(4))  # each failed once, ran twice

    with pytest.raises(DataCleanerError, match="failed after 2 retries: .*this job cannot succeed"):
        list(executor.run([Job(always_fails, {}, desc="doomed", cpus=1)]))
    ray.shutdown()


def _frozen_config(tmp_path: Path, **extra) -> Path:
    """A frozen member on a local backbone file (any weights with timm key names: the tests compare executors)."""
    import timm
    from safetensors.torch import save_file

    backbone = tmp_path / "backbone.safetensors"
    if not backbone.is_file():
        torch_model = timm.create_model("resnet10t", num_classes=10)
        save_file({k: v.contiguous() for k, v in torch_model.state_dict().items()}, str(backbone))
    # local torch threads 2, Ray tasks 1: a head fits on its member's cpus threads on either executor
    cfg = {**TINY_CONFIG, "threads": 2, "shard_images": 70, **extra, "members": [
        {"arch": "resnet10t", "img_size": 32, "frozen": True, "pretrained_file": str(backbone), "cpus": 1}]}
    config = tmp_path / "frozen.yaml"
    config.write_text(yaml.safe_dump(cfg))
    return config


def test_ray_frozen_member_equals_local_and_resumes_after_kill(noisy_digits, ray_cluster, tmp_path):
    """A frozen member's backbone features (in Ray shards) and its heads (Ray jobs): kill -9 of the Ray run
    once some heads are saved, and the same command finishes it without fitting them again. The scores and
    the review list are the local executor's, and summary.json says where each kind of work ran."""
    import signal
    import time

    from datacleaner import clean

    data, _ = noisy_digits
    config = _frozen_config(tmp_path, folds=5, passes=2)
    total = clean(data, tmp_path / "local", config).summary["work"]["head_fits"]
    assert total == 10  # 5 rounds x 2 passes

    cmd = [sys.executable, "-m", "datacleaner", "clean", str(data), "--config", str(config), "--out", str(tmp_path / "ray"),
           "-q", "--executor", "ray", "--ray-address", ray_cluster]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    heads = tmp_path / "ray" / "heads"
    deadline = time.monotonic() + 600
    while proc.poll() is None and time.monotonic() < deadline and not (heads.is_dir() and any(heads.glob("*.npz"))):
        time.sleep(0.01)
    if proc.poll() is not None:
        pytest.fail(f"the Ray run ended before a head was saved (exit {proc.returncode}): {proc.stderr.read()[-3000:]}")
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    saved = len(list(heads.glob("*.npz")))
    assert proc.returncode == -signal.SIGKILL and 1 <= saved < total
    assert not (tmp_path / "ray" / "summary.json").exists()

    again = _cli(*cmd[3:])
    assert again.returncode == 0, again.stderr[-3000:]
    summary = yaml.safe_load((tmp_path / "ray" / "summary.json").read_text())
    assert summary["work"]["head_fits"] <= total - saved  # the saved heads were not fitted again
    a = pd.read_csv(tmp_path / "local" / "scores.csv", keep_default_na=False)
    b = pd.read_csv(tmp_path / "ray" / "scores.csv", keep_default_na=False)
    np.testing.assert_allclose(a["label_quality"].replace("", np.nan).astype(float),
                               b["label_quality"].replace("", np.nan).astype(float), atol=1e-5)
    assert (tmp_path / "ray" / "review.csv").read_text() == (tmp_path / "local" / "review.csv").read_text()
    where = {name: yaml.safe_load((tmp_path / name / "summary.json").read_text())["executor"] for name in ("local", "ray")}
    assert where == {"local": {"features": "local", "training": "none", "heads": "local"},
                     "ray": {"features": "ray", "training": "none", "heads": "ray"}}
