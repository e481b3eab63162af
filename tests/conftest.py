"""Shared fixtures: small folders of real images (scikit-learn's digit scans), a tiny CPU config, and
weights for the cpu profile's architectures made on the spot (no download)."""

from __future__ import annotations

import os

import pytest
import yaml

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

TINY_CONFIG = {
    "scheme": "cv",
    "folds": 3,
    "seed": 0,
    "device": "cpu",
    "tau": 0.3,
    "tta": {"mode": "deterministic", "views": 2},
    "augment": {"scale": [0.7, 1.0], "hflip": 0.0, "rotate": 10, "brightness": 0.2, "contrast": 0.2, "saturation": 0.0},
    "members": [
        {"arch": "resnet10t", "img_size": 32, "epochs": 6, "batch_size": 32, "lr": 0.003},
        {"arch": "regnetx_002", "img_size": 32, "epochs": 6, "batch_size": 32, "lr": 0.003},
    ],
}


@pytest.fixture(scope="session")
def tiny_config(tmp_path_factory):
    path = tmp_path_factory.mktemp("cfg") / "tiny.yaml"
    path.write_text(yaml.safe_dump(TINY_CONFIG))
    return path


@pytest.fixture(scope="session")
def noisy_digits(tmp_path_factory):
    """4 digit classes x 60 real scans, 10% of labels flipped: (folder, truth table)."""
    from datacleaner.demo import write_noisy_digits

    root = tmp_path_factory.mktemp("digits") / "data"
    truth = write_noisy_digits(root, noise=0.1, seed=1, per_class=60, classes=[0, 1, 3, 7])
    return root, truth


@pytest.fixture(scope="session")
def weights_dir(tmp_path_factory):
    """Weights for the cpu profile's two architectures with timm key names, made here (random
    initialisation, seeded: these tests check where weights come from and what a run does with them,
    not ImageNet quality). One is named <arch>.<tag>.safetensors, the other <arch>.safetensors."""
    import timm
    import torch
    from safetensors.torch import save_file

    folder = tmp_path_factory.mktemp("weights")
    for arch, name in [("tf_efficientnet_lite0", "tf_efficientnet_lite0.in1k"), ("mobilenetv2_100", "mobilenetv2_100")]:
        torch.manual_seed(0)
        model = timm.create_model(arch, num_classes=1000)
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(folder / f"{name}.safetensors"))
    return folder
