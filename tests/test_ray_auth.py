"""A real Ray cluster with token authentication refusing this process: one line that says what to do.

Its own module: `ray stop` at the end stops every Ray on the machine, so it runs after test_ray.py's
cluster is gone."""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml

pytest.importorskip("ray")

from conftest import TINY_CONFIG  # noqa: E402


def test_a_cluster_that_refuses_our_token_is_one_line_that_says_what_to_do(noisy_digits, tmp_path):
    """A local Ray leaves ~/.ray/auth_token behind; a cluster then started with `ray start` where that file is
    uses token authentication, and a process without the token cannot connect (InvalidAuthToken)."""
    cluster_home, client_home = tmp_path / "cluster-home", tmp_path / "client-home"
    (cluster_home / ".ray").mkdir(parents=True)
    (cluster_home / ".ray" / "auth_token").write_text(secrets.token_hex(32))  # what a local ray.init() leaves
    client_home.mkdir()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ray_bin = str(Path(sys.executable).parent / "ray")
    clean_env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_AUTH")}
    cluster_env = {**clean_env, "HOME": str(cluster_home)}
    temp = tempfile.mkdtemp(prefix="dc-ray-")  # short: Ray's socket paths must fit in 107 bytes
    started = subprocess.run(
        [ray_bin, "start", "--head", "--node-ip-address=127.0.0.1", f"--port={port}", "--num-cpus=1", "--num-gpus=0",
         "--include-dashboard=false", "--disable-usage-stats", f"--temp-dir={temp}"],
        capture_output=True, text=True, timeout=180, env=cluster_env)
    assert started.returncode == 0, started.stderr[-2000:]
    try:
        config = tmp_path / "tiny.yaml"
        config.write_text(yaml.safe_dump(TINY_CONFIG))
        r = subprocess.run(
            [sys.executable, "-m", "datacleaner", "clean", str(noisy_digits[0]), "-c", str(config), "--out", str(tmp_path / "run"),
             "--executor", "ray", "--ray-address", f"127.0.0.1:{port}", "-q"],
            capture_output=True, text=True, timeout=300,
            env={**clean_env, "HOME": str(client_home), "RAY_gcs_server_port_wait_time_s": "2"})  # give up after 2 tries, not 20
    finally:
        subprocess.run([ray_bin, "stop", "--force"], capture_output=True, timeout=120, env=cluster_env)
        shutil.rmtree(temp, ignore_errors=True)
    assert r.returncode == 1, r.stderr[-2000:]
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: cannot connect to Ray at 127.0.0.1:{port}: the cluster uses Ray's token authentication "
                           "and refused this process's token (InvalidAuthToken); give this process the cluster's token")
    assert "move it away and restart the cluster" in last and "Traceback" not in r.stderr
