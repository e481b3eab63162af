"""Frozen backbones on ONNX Runtime (engines.py): the same numbers as torch, a cache that is only a
cache, torch standing in when the export fails, and the engine recorded wherever it ran."""

import json

import numpy as np
import pandas as pd
import pytest
import timm
import torch
import yaml
from safetensors.torch import save_file
from typer.testing import CliRunner

from datacleaner import engines
from datacleaner.cli import app
from datacleaner.committee import Committee
from datacleaner.config import AugmentConfig, TTAConfig
from datacleaner.models import Preprocess
from datacleaner.predict import predict_features, predict_logits

runner = CliRunner()
CPU = torch.device("cpu")


def digit_images(n: int = 48, side: int = 64) -> np.ndarray:
    """Real scans (scikit-learn's digits) as (n, side, side, 3) uint8."""
    from sklearn.datasets import load_digits

    pixels = (load_digits().images[:n] * (255 / 16)).astype(np.uint8)
    big = np.stack([np.kron(p, np.ones((side // 8, side // 8), dtype=np.uint8)) for p in pixels])
    return np.repeat(big[..., None], 3, axis=3)


@pytest.fixture(scope="module")
def backbone_file(tmp_path_factory):
    torch.manual_seed(0)
    model = timm.create_model("resnet10t", num_classes=1000)
    path = tmp_path_factory.mktemp("weights") / "resnet10t.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return path


def model_with_head(seed: int = 0, classes: int = 4) -> torch.nn.Module:
    torch.manual_seed(seed)
    return timm.create_model("resnet10t", num_classes=classes).eval()


def test_onnx_features_and_logits_equal_torch_on_real_images():
    model, images = model_with_head(), digit_images()
    prep = Preprocess(size=48, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
    backbone, run = engines.engine_for("auto", True, CPU, model, prep.size)
    assert backbone is not None and run.engine == "onnxruntime" and not run.note
    tta = TTAConfig(mode="deterministic", views=2)
    args = (model, images, np.arange(len(images)), prep, tta, AugmentConfig())
    for features in (True, False):
        ref = predict_logits(*args, device=CPU, seed=0, features=features)
        out = predict_logits(*args, device=CPU, seed=0, features=features, backbone=backbone)
        assert out.shape == ref.shape == (len(images), 2, 512 if features else 4)
        assert np.abs(ref).max() > 0.1  # real activations, not zeros
        assert np.abs(out - ref).max() < 1e-4
    plain = predict_features(model, images, prep, device=CPU)
    assert np.abs(predict_features(model, images, prep, device=CPU, backbone=backbone) - plain).max() < 1e-4


def test_the_export_is_cached_by_backbone_and_rebuilt_when_broken(onnx_cache):
    model = model_with_head(seed=1)
    backbone, _ = engines.onnx_backbone(model, 40)
    path = backbone.path
    assert path.parent == onnx_cache / "onnx" and path.name.startswith("resnet10t-40px-")
    stamp = path.stat().st_mtime_ns
    engines._sessions.clear()
    other_head = model_with_head(seed=5, classes=7)
    other_head.load_state_dict({k: v for k, v in model.state_dict().items() if not k.startswith("fc.")}, strict=False)
    again, _ = engines.onnx_backbone(other_head, 40)  # another head on the same backbone
    assert again.path == path and path.stat().st_mtime_ns == stamp  # reused, not exported again
    assert engines.onnx_backbone(model_with_head(seed=2), 40)[0].path != path  # other weights: another file
    assert engines.onnx_backbone(model, 48)[0].path != path  # another size: another file
    engines._sessions.clear()
    path.write_bytes(b"not an onnx file")
    rebuilt, run = engines.onnx_backbone(model, 40)
    assert run.engine == "onnxruntime" and rebuilt.path == path and path.stat().st_size > 1000


def test_torch_runs_where_onnx_runtime_is_not_wanted_or_fails(monkeypatch):
    model = model_with_head(seed=3)
    assert engines.engine_for("torch", True, CPU, model, 32) == (None, engines.Run("torch"))
    assert engines.engine_for("auto", False, CPU, model, 32)[0] is None  # fine-tuned members: torch
    none, run = engines.engine_for("onnxruntime", True, torch.device("cuda"), model, 32)
    assert none is None and "CPU only" in run.note

    def broken(*args, **kwargs):
        raise RuntimeError("unsupported operator Foo")

    monkeypatch.setattr(engines, "export", broken)
    none, run = engines.engine_for("auto", True, CPU, model, 32)
    assert none is None and run.engine == "torch" and "unsupported operator Foo" in run.note


def frozen_config(tmp_path, backbone_file, **extra):
    cfg = {
        "scheme": "cv", "folds": 3, "device": "cpu", "tau": 0.3, "passes": 1, "checks": "duplicates",
        "tta": {"mode": "deterministic", "views": 2}, "augment": {"hflip": 0.0},
        "members": [{"arch": "resnet10t", "img_size": 32, "frozen": True, "pretrained_file": str(backbone_file), "head_l2": 0.01}],
        **extra,
    }
    path = tmp_path / "frozen.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_clean_on_both_engines_gives_the_same_review_list(noisy_digits, backbone_file, tmp_path):
    data, _ = noisy_digits
    config = frozen_config(tmp_path, backbone_file)
    runs = {}
    for engine in ("auto", "torch"):
        out = tmp_path / engine
        result = runner.invoke(app, ["clean", str(data), "-o", str(out), "-c", str(config), "--engine", engine])
        assert result.exit_code == 0, result.output
        runs[engine] = out
    ran = {e: json.loads((runs[e] / "summary.json").read_text())["engines"] for e in runs}
    assert ran == {"auto": {"resnet10t": "onnxruntime"}, "torch": {"resnet10t": "torch"}}
    assert "resnet10t: onnxruntime" in runner.invoke(app, ["rescore", str(runs["auto"])]).output  # kept by a re-score
    a, b = (pd.read_csv(runs[e] / "scores.csv").sort_values("path").reset_index(drop=True) for e in runs)
    assert np.abs(a["label_quality"] - b["label_quality"]).max() < 0.01  # features stored as float16 in both
    review = {e: sorted(pd.read_csv(runs[e] / "review.csv")["path"]) for e in runs}
    assert review["auto"] == review["torch"] and len(review["auto"]) > 0


def test_a_committee_bundle_judges_the_same_on_both_engines(noisy_digits, backbone_file, tmp_path):
    data, truth = noisy_digits
    bundle = tmp_path / "bundle"
    result = runner.invoke(app, ["train", str(data), "-o", str(bundle), "-c", str(frozen_config(tmp_path, backbone_file))])
    assert result.exit_code == 0, result.output
    assert json.loads((bundle / "summary.json").read_text())["engines"] == {"resnet10t": "onnxruntime"}
    assert not list(bundle.rglob("*.onnx"))  # the bundle stays portable: safetensors only
    files = [data / p for p in truth["path"][:40]]
    probs = {}
    for engine in ("auto", "torch"):
        committee = Committee.load(bundle, engine=engine)
        probs[engine], problems = committee.predict_paths(files)
        assert not problems and committee.engines_ == {"resnet10t": "onnxruntime" if engine == "auto" else "torch"}
    assert np.abs(probs["auto"] - probs["torch"]).max() < 1e-4


def test_a_wrong_engine_is_named(noisy_digits, tmp_path, tiny_config):
    data, _ = noisy_digits
    result = runner.invoke(app, ["clean", str(data), "-o", str(tmp_path / "run"), "-c", str(tiny_config), "--engine", "tensorrt"])
    assert result.exit_code != 0 and "engine" in result.output and "onnxruntime" in result.output
