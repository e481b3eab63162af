"""A new user's first run: a built-in profile chosen without --config, pretrained weights from a
local folder (or one clear line when there are none), `doctor`, and the lazy package import."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time

import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from datacleaner.cli import app
from datacleaner.errors import DataCleanerError
from datacleaner.weights import file_names, local_file

runner = CliRunner()


def offline_env(tmp_path, endpoint: str) -> dict:
    """No weights folder, an empty Hugging Face cache, and the hub at `endpoint`."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATACLEANER_WEIGHTS_DIR", "HF_HUB_OFFLINE")}
    env.update(HF_HOME=str(tmp_path / "hf"), HF_ENDPOINT=endpoint, TORCH_HOME=str(tmp_path / "torch"))
    return env


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens here once the socket closes


@pytest.mark.skipif(torch.cuda.is_available(), reason="without --config a CUDA machine runs the gpu profile")
def test_clean_without_config_runs_the_cpu_profile_with_weights_from_a_folder(tinted_digits, weights_dir, tmp_path):
    root, truth = tinted_digits  # colour images: the photo profile
    out = tmp_path / "run"
    r = runner.invoke(app, ["clean", str(root), "--out", str(out), "--weights-dir", str(weights_dir), "-q"])
    assert r.exit_code == 0, r.output
    why = ("no --config given and no CUDA GPU found; 240 images, 4 classes, colour, median side 32 px: "
           "pretrained photo features suit them")
    assert f"profile          cpu ({why})" in r.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["profile"] == "cpu" and summary["profile_reason"] == why
    assert list(summary["members"]) == ["tf_efficientnet_lite2", "mobilenetv2_100"] and summary["passes"] == 2
    assert len(list((out / "features").glob("*.npy"))) == 2  # both frozen backbones ran on every image
    assert "health_features" not in json.loads((out / "run.json").read_text())  # colour: the backbone's features pair copies
    scores = pd.read_csv(out / "scores.csv", keep_default_na=False).merge(truth, on="path")
    flagged = scores["issue"].str.split(";").str[0].isin(["mislabel", "low_confidence"])
    assert flagged.sum() >= 10
    assert scores.loc[flagged, "flipped"].mean() >= 0.7 and scores.loc[scores["flipped"], "issue"].ne("").mean() >= 0.7


@pytest.mark.skipif(torch.cuda.is_available(), reason="without --config a CUDA machine runs the gpu profile")
def test_train_without_config_takes_weights_from_the_environment(tinted_digits, weights_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("DATACLEANER_WEIGHTS_DIR", str(weights_dir))
    r = runner.invoke(app, ["train", str(tinted_digits[0]), "--out", str(tmp_path / "committee"), "-q"])
    assert r.exit_code == 0, r.output
    summary = json.loads((tmp_path / "committee" / "summary.json").read_text())
    assert summary["profile"] == "cpu" and "no --config given" in summary["profile_reason"]
    assert summary["members"] == ["tf_efficientnet_lite2", "mobilenetv2_100"]
    assert "profile          cpu" in r.output


def test_weight_files_are_found_by_architecture_and_tag(tmp_path):
    (tmp_path / "resnet18.safetensors").write_bytes(b"x")
    (tmp_path / "resnet50.a1_in1k.safetensors").write_bytes(b"x")
    (tmp_path / "convnext_tiny.fb_in1k.safetensors").write_bytes(b"x")
    (tmp_path / "convnext_tiny.fb_in22k.safetensors").write_bytes(b"x")
    assert local_file("resnet18", tmp_path) == tmp_path / "resnet18.safetensors"
    assert local_file("resnet50", tmp_path) == tmp_path / "resnet50.a1_in1k.safetensors"  # timm's default tag
    assert local_file("resnet50.a1_in1k", tmp_path) == tmp_path / "resnet50.a1_in1k.safetensors"
    assert local_file("resnet50.tv_in1k", tmp_path) is None  # a tag asked for is the tag used
    assert local_file("convnext_tiny.fb_in22k", tmp_path) == tmp_path / "convnext_tiny.fb_in22k.safetensors"
    with pytest.raises(DataCleanerError, match=r"several weight files for convnext_tiny .*arch: convnext_tiny\.<tag>"):
        local_file("convnext_tiny", tmp_path)
    assert local_file("efficientnet_b2", tmp_path) is None
    assert file_names("mobilenetv2_100") == [
        "mobilenetv2_100.safetensors", "mobilenetv2_100.ra_in1k.safetensors", "mobilenetv2_100.<tag>.safetensors"]


def test_a_weights_file_from_the_folder_is_the_one_loaded(weights_dir):
    from safetensors.torch import load_file

    from datacleaner.config import load_config
    from datacleaner.models import create_member_model
    from datacleaner.weights import resolve_weights

    cfg = load_config("cpu", {"weights_dir": weights_dir})
    found = resolve_weights(cfg)
    assert found == {"tf_efficientnet_lite2": str(weights_dir / "tf_efficientnet_lite2.in1k.safetensors"),
                     "mobilenetv2_100": str(weights_dir / "mobilenetv2_100.safetensors")}
    member = cfg.members[1]
    model = create_member_model(member, 4, pretrained_path=found[member.label])
    saved = load_file(found[member.label])
    torch.testing.assert_close(model.state_dict()["conv_stem.weight"], saved["conv_stem.weight"])
    assert model.get_classifier().out_features == 4  # a new head for the dataset's classes


def test_no_weights_and_no_hub_is_one_line_within_a_minute(tinted_digits, tmp_path):
    out = tmp_path / "run"
    started = time.time()
    r = subprocess.run([sys.executable, "-m", "datacleaner", "clean", str(tinted_digits[0]), "--out", str(out), "-q"],
                       capture_output=True, text=True, env=offline_env(tmp_path, f"http://127.0.0.1:{closed_port()}"),
                       timeout=120)
    assert time.time() - started < 60
    assert r.returncode == 1, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert lines[0].startswith("error: member 'tf_efficientnet_lite2' has no pretrained weights")
    for needed in ("tf_efficientnet_lite2.safetensors", "--weights-dir", "DATACLEANER_WEIGHTS_DIR", "hub"):
        assert needed in lines[0]
    assert not out.exists()  # stopped before writing anything


def test_a_hub_that_never_answers_does_not_hang_the_run(noisy_digits, tmp_path):
    """A server that accepts connections and says nothing: the hub probe gives up on its own."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held = []
    threading.Thread(target=lambda: [held.append(server.accept()) for _ in range(16)], daemon=True).start()
    try:
        started = time.time()
        r = subprocess.run(
            [sys.executable, "-m", "datacleaner", "doctor"], capture_output=True, text=True, timeout=120,
            env=offline_env(tmp_path, f"http://127.0.0.1:{server.getsockname()[1]}"),
        )
        elapsed = time.time() - started
    finally:
        server.close()
    assert r.returncode == 1 and elapsed < 60, (elapsed, r.stderr)
    assert "did not answer within" in r.stderr and "problem: member 'tf_efficientnet_lite2'" in r.stderr
    assert "member tf_efficientnet_lite2  NO WEIGHTS" in r.stdout
    assert "Traceback" not in r.stderr


def test_doctor_reports_versions_device_and_weights(weights_dir):
    r = runner.invoke(app, ["doctor", "--weights-dir", str(weights_dir)])
    assert r.exit_code == 0, r.output
    for key in ("python", "torch", "timm", "device", "ray", "profile"):
        assert any(line.startswith(key) for line in r.output.splitlines()), key
    assert str(weights_dir / "tf_efficientnet_lite2.in1k.safetensors") in r.output
    assert "ready: a run with this config has everything it needs" in r.output
    engine = next(line for line in r.output.splitlines() if line.startswith("engine"))
    assert "onnxruntime" in engine and "tf_efficientnet_lite2, mobilenetv2_100" in engine  # the cpu profile's frozen members
    r = runner.invoke(app, ["doctor", "--config", "small"])
    assert r.exit_code == 0 and "trained from scratch: needs no weights" in r.output
    r = runner.invoke(app, ["doctor", "--config", "small", "--device", "cuda"])
    assert (r.exit_code == 1) != torch.cuda.is_available()


def test_version_and_profiles_commands():
    r = runner.invoke(app, ["--version"])
    import datacleaner

    assert r.exit_code == 0 and r.output.strip() == f"datacleaner {datacleaner.__version__}"
    r = runner.invoke(app, ["profiles"])
    lines = r.output.splitlines()
    assert r.exit_code == 0 and [line.split()[0] for line in lines[:3]] == ["cpu", "gpu", "small"]
    r = runner.invoke(app, ["profiles", "show", "cpu"])
    assert r.exit_code == 0 and "frozen: true" in r.output and "tf_efficientnet_lite2" in r.output
    r = runner.invoke(app, ["profiles", "show", "nosuch"])
    assert r.exit_code == 1 and "no built-in profile 'nosuch'" in r.output


def test_importing_the_package_and_the_pure_modules_loads_no_heavy_library():
    code = (
        "import sys, datacleaner, datacleaner.fuse, datacleaner.scoring, datacleaner.folds, datacleaner.calibrate, "
        "datacleaner.config, datacleaner.keys, datacleaner.health\n"
        "heavy = sorted({'torch', 'timm', 'pandas', 'albumentations'} & set(sys.modules))\n"
        "print(heavy)\n"
        "assert callable(datacleaner.clean) and callable(datacleaner.select) and callable(datacleaner.train)\n"
        "assert datacleaner.Committee.__name__ == 'Committee' and callable(datacleaner.load_config)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0] == "[]"


def test_cached_work_follows_the_weights_content_not_the_file_name(few_digits, weights_dir, tmp_path):
    """The same files in another folder reuse the cached features; other weights under the same
    names compute them anew."""
    import shutil

    import timm
    from safetensors.torch import save_file

    root, _ = few_digits
    out = tmp_path / "run"
    args = ["clean", str(root), "--out", str(out), "-c", "cpu", "--folds", "3", "--passes", "1", "-q",
            "--engine", "torch"]  # about the run's cache keys: no ONNX export of the other weights needed
    assert runner.invoke(app, [*args, "--weights-dir", str(weights_dir)]).exit_code == 0
    first = {p.name: p.stat().st_mtime_ns for p in (out / "features").glob("*.npy")}
    moved = shutil.copytree(weights_dir, tmp_path / "moved")
    assert runner.invoke(app, [*args, "--weights-dir", str(moved)]).exit_code == 0
    assert {p.name: p.stat().st_mtime_ns for p in (out / "features").glob("*.npy")} == first
    other = tmp_path / "other"
    shutil.copytree(weights_dir, other)
    torch.manual_seed(1)  # different weights under the same file name
    model = timm.create_model("mobilenetv2_100", num_classes=1000)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(other / "mobilenetv2_100.safetensors"))
    r = runner.invoke(app, [*args, "--weights-dir", str(other)])
    assert r.exit_code == 0, r.output
    after = {p.name for p in (out / "features").glob("*.npy")}
    new = after - set(first)
    assert len(after) == 3 and len(new) == 1 and next(iter(new)).startswith("mobilenetv2_100-")


def test_a_rerun_and_a_rescore_need_no_weights_for_work_the_run_has_cached(few_digits, weights_dir, tmp_path, monkeypatch):
    import shutil

    import huggingface_hub

    root, _ = few_digits
    out, weights = tmp_path / "run", shutil.copytree(weights_dir, tmp_path / "weights")
    args = ["clean", str(root), "--out", str(out), "-c", "cpu", "--folds", "3", "--weights-dir", str(weights)]
    assert runner.invoke(app, [*args, "-q"]).exit_code == 0
    review = (out / "review.csv").read_text()
    shutil.move(weights, tmp_path / "elsewhere")  # the weights folder moved away, and no hub
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr("datacleaner.weights.hub_cached_file", lambda arch: None)
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    assert "weights: tf_efficientnet_lite2's are not found; going on with this run's cached work for it" in r.output
    assert (out / "review.csv").read_text() == review
    assert runner.invoke(app, ["rescore", str(out), "--tau", "0.2"]).exit_code == 0
    r = runner.invoke(app, [*args, "--tta-views", "1"])  # other views: features the run has not cached
    assert r.exit_code == 1
    assert "member 'tf_efficientnet_lite2' needs its pretrained weights: this run has no cached features for it" in r.output
    assert f"weights_dir {weights} is not a folder" in r.output and "Traceback" not in r.output
    assert yaml_views(out) == 2  # the failed re-run wrote nothing over the run


def yaml_views(run) -> int:
    import yaml

    return yaml.safe_load((run / "config.yaml").read_text())["tta"]["views"]
