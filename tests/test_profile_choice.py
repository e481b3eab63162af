"""The profile a run without --config uses follows the data (choice.py), `doctor DATA` says it before
anything is trained, and a YAML config builds on a profile or another file with `base:`."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from typer.testing import CliRunner

from datacleaner.choice import MIN_PER_CLASS, SMALL_SIDE, choose_profile, look_at
from datacleaner.cli import app
from datacleaner.config import dump_config, load_config, resolve_config
from datacleaner.errors import DataCleanerError

runner = CliRunner()
BY_DEVICE = "gpu" if torch.cuda.is_available() else "cpu"


def image_folder(root, side: int, *, per_class: int = MIN_PER_CLASS, classes: int = 2, gray: bool = True, rgb_file: bool = False):
    """Class folders of `side` px images: grayscale (saved as L, or as RGB with three equal channels) or colour."""
    rng = np.random.default_rng(side)
    for c in range(classes):
        (root / f"c{c}").mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            pixels = rng.integers(0, 256, (side, side, 1 if gray else 3), dtype=np.uint8)
            if gray and rgb_file:
                pixels = np.repeat(pixels, 3, axis=2)
            Image.fromarray(pixels.squeeze(2) if pixels.shape[2] == 1 else pixels).save(root / f"c{c}" / f"{i}.png")
    return root


def test_small_grayscale_images_get_the_small_profile_up_to_the_boundary(tmp_path):
    assert choose_profile(look_at(image_folder(tmp_path / "a", SMALL_SIDE)), "cpu")[0] == "small"
    assert choose_profile(look_at(image_folder(tmp_path / "b", 28, rgb_file=True)), "cpu")[0] == "small"  # grey saved as RGB
    shape = look_at(image_folder(tmp_path / "c", SMALL_SIDE + 1))
    assert shape.median_side == SMALL_SIDE + 1 and shape.gray_share == 1.0
    assert choose_profile(shape, "cpu")[0] == "cpu"  # larger scans: pretrained features


def test_colour_too_few_and_mixed_data_keep_the_device_choice(tmp_path):
    colour = look_at(image_folder(tmp_path / "colour", 32, gray=False))
    assert colour.gray_share == 0.0
    profile, why = choose_profile(colour, "cpu")
    assert profile == "cpu" and "colour" in why and "pretrained photo features" in why
    few = look_at(image_folder(tmp_path / "few", 32, per_class=MIN_PER_CLASS - 1))
    profile, why = choose_profile(few, "cpu")
    assert profile == "cpu" and f"under {MIN_PER_CLASS} per class" in why
    mixed = tmp_path / "mixed"
    image_folder(mixed / "g", 32, per_class=MIN_PER_CLASS // 2)
    image_folder(mixed / "k", 32, per_class=MIN_PER_CLASS // 2, gray=False)
    for folder in (mixed / "k").iterdir():  # one tree: c0, c1 with half grey and half colour images
        for f in folder.iterdir():
            f.rename(mixed / "g" / folder.name / f"k{f.name}")
    profile, why = choose_profile(look_at(mixed / "g"), "cpu")
    assert profile == "cpu" and "mixed" in why
    profile, why = choose_profile(None, "cpu")
    assert profile == "cpu" and "could not be sampled" in why


def doctor_facts(output: str) -> dict[str, str]:
    return dict(line.split(None, 1) for line in output.splitlines() if line.split(None, 1)[0] in ("data", "profile"))


@pytest.fixture(scope="module")
def digit_scans(tmp_path_factory):
    """Two digit classes x 150 real scans (grayscale, 32 px), 10% of labels flipped: enough to train from scratch."""
    from datacleaner.demo import write_noisy_digits

    root = tmp_path_factory.mktemp("scans") / "data"
    write_noisy_digits(root, noise=0.1, seed=2, per_class=MIN_PER_CLASS, classes=[0, 1])
    return root


def test_doctor_names_the_profile_for_the_data_before_anything_is_trained(digit_scans, noisy_digits, tinted_digits,
                                                                           weights_dir):
    r = runner.invoke(app, ["doctor", str(digit_scans)])
    assert r.exit_code == 0, r.output
    facts = doctor_facts(r.output)
    assert facts["data"].endswith("300 images, 2 classes, grayscale, median side 32 px (from 64 sampled images)")
    assert facts["profile"].startswith("small (no --config given; 300 images")
    r = runner.invoke(app, ["doctor", str(noisy_digits[0]), "--weights-dir", str(weights_dir)])  # 60 scans per class
    facts = doctor_facts(r.output)
    assert facts["profile"].startswith(f"{BY_DEVICE} (no --config given") and f"under {MIN_PER_CLASS} per class" in facts["profile"]
    r = runner.invoke(app, ["doctor", str(tinted_digits[0]), "--weights-dir", str(weights_dir)])
    assert r.exit_code == 0, r.output
    facts = doctor_facts(r.output)
    assert facts["profile"].startswith(f"{BY_DEVICE} (no --config given") and "colour" in facts["profile"]
    r = runner.invoke(app, ["doctor", str(digit_scans), "-c", "cpu", "--weights-dir", str(weights_dir)])
    assert doctor_facts(r.output)["profile"] == "cpu (built-in profile given by name)"  # a config given is the one used


def test_clean_without_config_on_digit_scans_runs_the_small_profile_and_says_why(digit_scans, tmp_path):
    out = tmp_path / "run"
    r = runner.invoke(app, ["clean", str(digit_scans), "--out", str(out), "--folds", "2", "--epochs", "1", "--tta-views", "1"])
    assert r.exit_code == 0, r.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["profile"] == "small"
    assert summary["profile_reason"] == ("no --config given; 300 images, 2 classes, grayscale, median side 32 px: "
                                         "small grayscale images train better from scratch at 32 px")
    lines = r.output.splitlines()
    assert lines[0] == f"profile: small ({summary['profile_reason']})"  # said before any work
    assert f"profile          small ({summary['profile_reason']})\nimages           300" in r.output  # first in the summary
    assert yaml.safe_load((out / "config.yaml").read_text())["members"][0]["arch"] == "resnet10t"


def write_yaml(path, data) -> str:
    path.write_text(yaml.safe_dump(data))
    return str(path)


def test_a_config_holds_only_what_it_changes_on_a_base(tmp_path):
    three = write_yaml(tmp_path / "three.yaml", {"base": "cpu", "folds": 3, "tta": {"views": 1}})
    cfg, origin = resolve_config(three)
    expected = load_config("cpu")
    expected.folds, expected.tta.views = 3, 1
    assert cfg == expected and origin.reason == "YAML file given, base cpu"
    (tmp_path / "sub").mkdir()
    on_top = write_yaml(tmp_path / "sub" / "fast.yaml", {"base": "../three.yaml", "passes": 1, "weights_dir": "w",
                                                         "members": [{"arch": "mobilenetv2_100", "pretrained": True,
                                                                      "frozen": True, "img_size": 160}]})
    cfg, origin = resolve_config(on_top)
    assert origin.reason == "YAML file given, base ../three.yaml -> cpu"
    assert (cfg.folds, cfg.passes, cfg.tta.views, cfg.tta.mode) == (3, 1, 1, "deterministic")  # sections merge key by key
    assert [m.arch for m in cfg.members] == ["mobilenetv2_100"]  # a list replaces the base's
    assert cfg.weights_dir == str(tmp_path / "sub" / "w")  # relative to the file that names it
    r = runner.invoke(app, ["profiles", "show", on_top])
    assert r.exit_code == 0, r.output
    assert r.output.startswith(f"# {on_top} as a run uses it (YAML file given, base ../three.yaml -> cpu)\n")
    assert load_config(write_yaml(tmp_path / "shown.yaml", yaml.safe_load(r.output))) == cfg
    assert dump_config(cfg) in r.output


def test_a_loop_of_bases_or_a_missing_base_is_one_clear_error(tmp_path):
    write_yaml(tmp_path / "a.yaml", {"base": "b.yaml", "folds": 3})
    write_yaml(tmp_path / "b.yaml", {"base": "./a.yaml"})
    with pytest.raises(DataCleanerError, match=r"b\.yaml: base: \./a\.yaml leads back to itself \(a\.yaml -> b\.yaml -> a\.yaml\)"):
        load_config(tmp_path / "a.yaml")
    write_yaml(tmp_path / "c.yaml", {"base": "cpux"})
    with pytest.raises(DataCleanerError, match=r"base: cpux is neither a built-in profile \(cpu, gpu, small\) nor a file"):
        load_config(tmp_path / "c.yaml")
    write_yaml(tmp_path / "d.yaml", {"base": "cpu", "fols": 3})
    with pytest.raises(DataCleanerError, match="unknown key 'fols'"):
        load_config(tmp_path / "d.yaml")
    r = runner.invoke(app, ["profiles", "show", str(tmp_path / "a.yaml")])
    assert r.exit_code == 1 and "leads back to itself" in r.output and "Traceback" not in r.output


def test_grayscale_scans_on_photo_backbones_pair_near_copies_by_their_pixels(noisy_digits, weights_dir, tmp_path):
    """The cpu profile on grayscale scans: the health checks pair images by their pixels (run.json
    health_features), since a photo backbone finds one writer's 1 close to every other's; colour
    data keeps the backbone's features."""
    out = tmp_path / "run"
    r = runner.invoke(app, ["clean", str(noisy_digits[0]), "--out", str(out), "-c", "cpu", "--folds", "2", "--tta-views", "1",
                            "--passes", "1", "--weights-dir", str(weights_dir), "-q"])
    assert r.exit_code == 0, r.output
    assert json.loads((out / "run.json").read_text())["health_features"] == "pixels"
    saved = list((out / "features").glob("health-*.npz"))
    assert len(saved) == 1 and str(np.load(saved[0])["source"]) == "pixels"
