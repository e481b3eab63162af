"""Shared fixtures: small folders of real images (scikit-learn's digit scans), a tiny CPU config, and
weights for the cpu profile's architectures made on the spot (no download)."""

from __future__ import annotations

import os

import pytest
import yaml

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")


@pytest.fixture(scope="session", autouse=True)
def onnx_cache(tmp_path_factory):
    """Exported backbones (engines.py) go to a folder of this test session, not the user's cache."""
    folder = tmp_path_factory.mktemp("cache")
    old = os.environ.get("DATACLEANER_CACHE_DIR")
    os.environ["DATACLEANER_CACHE_DIR"] = str(folder)
    yield folder
    if old is None:
        os.environ.pop("DATACLEANER_CACHE_DIR", None)
    else:
        os.environ["DATACLEANER_CACHE_DIR"] = old

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
def few_digits(tmp_path_factory):
    """4 digit classes x 30 real scans, 10% of labels flipped: (folder, truth table). For tests of how a run
    goes (resume, executors, weight caches, the wheel), which need real images but not the quality checks'
    numbers: members trained on 80 scans learn too little for those."""
    from datacleaner.demo import write_noisy_digits

    root = tmp_path_factory.mktemp("few_digits") / "data"
    truth = write_noisy_digits(root, noise=0.1, seed=1, per_class=30, classes=[0, 1, 3, 7])
    return root, truth


@pytest.fixture(scope="session")
def tinted_digits(noisy_digits, tmp_path_factory):
    """noisy_digits in colour (dark blue ink on cream paper, the same for every scan): data that a run
    without --config gives the photo (cpu) profile, as it would colour photos. (folder, truth table)."""
    import numpy as np
    from PIL import Image

    src, truth = noisy_digits
    root = tmp_path_factory.mktemp("tinted") / "data"
    paper, ink = np.array([250, 240, 215], np.float32), np.array([30, 40, 140], np.float32)
    for path in src.rglob("*.png"):
        gray = np.asarray(Image.open(path).convert("L"), np.float32)[..., None] / 255.0
        dest = root / path.relative_to(src)
        dest.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray((ink + (paper - ink) * (1 - gray)).round().astype(np.uint8)).save(dest)
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
    for arch, name in [("tf_efficientnet_lite2", "tf_efficientnet_lite2.in1k"), ("mobilenetv2_100", "mobilenetv2_100")]:
        torch.manual_seed(0)
        model = timm.create_model(arch, num_classes=1000)
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(folder / f"{name}.safetensors"))
    return folder


REVIEW_FILES = ("review.csv", "selection.csv", "scores.csv", "manifest.csv", "run.json", "summary.json", "config.yaml")


def copy_run(run, dest):
    """A copy of a run directory's lists and records (not its cache): tests that write decisions
    into a list work on their own copy. The copy still points at the same images."""
    import shutil

    dest.mkdir(parents=True, exist_ok=True)
    for name in REVIEW_FILES:
        if (run / name).is_file():
            shutil.copy2(run / name, dest / name)
    return dest


@pytest.fixture(scope="session")
def reviewable_run(noisy_digits, tiny_config, tmp_path_factory):
    """A finished `clean` of a copy of the noisy digits with one unreadable file: (data, run dir, truth).
    Read-only for tests: copy_run(run, tmp_path / "run") before writing decisions, and copy the
    data before applying them."""
    import shutil

    from datacleaner import clean

    data = tmp_path_factory.mktemp("review_data") / "data"
    shutil.copytree(noisy_digits[0], data)
    (data / "1" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    run = tmp_path_factory.mktemp("review_run") / "run"
    clean(data, run, tiny_config)
    return data, run, noisy_digits[1]


def write_digit_pool(root, count: int, cameras: int):
    """The last `count` digit scans of classes 0, 1, 3, 7 (unseen by the training fixtures) as a pool in
    `cameras` sub-folders, plus one broken file: (root, {path: true label})."""
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_digits

    d = load_digits()
    truth = {}
    picked = [i for i in range(len(d.target)) if d.target[i] in (0, 1, 3, 7)][-count:]
    for n, i in enumerate(picked):
        sub = root / f"cam{n % cameras}"
        sub.mkdir(parents=True, exist_ok=True)
        Image.fromarray((d.images[i] * 15).astype(np.uint8)).resize((32, 32)).save(sub / f"frame {i}.png")
        truth[f"cam{n % cameras}/frame {i}.png"] = str(d.target[i])
    (root / "cam0" / "broken.png").write_bytes(b"nope")
    return root, truth


@pytest.fixture(scope="session")
def selection_run(tiny_config, tmp_path_factory):
    """A finished `select` over 40 unseen digit scans (and one broken file) with a tiny committee and a
    production CSV that is wrong on every fifth image: (pool root, run dir, truth {path: label})."""
    import pandas as pd

    from datacleaner import select, train
    from datacleaner.demo import write_noisy_digits

    data = tmp_path_factory.mktemp("sel_train") / "data"
    write_noisy_digits(data, noise=0.0, seed=0, per_class=40, classes=[0, 1, 3, 7])
    committee = tmp_path_factory.mktemp("sel_committee") / "committee"
    train(data, committee, tiny_config)
    pool, truth = write_digit_pool(tmp_path_factory.mktemp("sel_pool") / "pool", count=40, cameras=2)
    wrong = {"0": "1", "1": "3", "3": "7", "7": "0"}
    prod = pd.DataFrame({"path": list(truth), "label": [wrong[v] if k % 5 == 0 else v for k, v in enumerate(truth.values())], "score": 0.9})
    prod_csv = tmp_path_factory.mktemp("sel_prod") / "prod.csv"
    prod.to_csv(prod_csv, index=False)
    run = tmp_path_factory.mktemp("sel_run") / "run"
    select(pool, committee, prod_csv, run, budget=10)
    return pool, run, truth
