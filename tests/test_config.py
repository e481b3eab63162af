import pytest
import yaml

from datacleaner.config import CleanConfig, load_config, profile_names, profile_text, resolve_config
from datacleaner.errors import DataCleanerError


def write(tmp_path, data):
    p = tmp_path / "c.yaml"
    p.write_text(yaml.safe_dump(data))
    return p


def test_unknown_keys_are_named(tmp_path):
    with pytest.raises(DataCleanerError, match="unknown key 'fodls'"):
        load_config(write(tmp_path, {"fodls": 3}))
    with pytest.raises(DataCleanerError, match="unknown key 'members\\[0\\].epoch'"):
        load_config(write(tmp_path, {"members": [{"arch": "resnet18", "epoch": 3}]}))
    with pytest.raises(DataCleanerError, match="unknown key 'tta.view'"):
        load_config(write(tmp_path, {"tta": {"view": 3}}))


def test_layering_defaults_yaml_flags(tmp_path):
    path = write(tmp_path, {"folds": 4, "tau": 0.2, "scheme": "cv", "members": [{"arch": "resnet10t", "epochs": 3}, {"arch": "regnetx_002"}]})
    cfg = load_config(path)
    assert (cfg.folds, cfg.tau, cfg.scheme, cfg.members[0].epochs) == (4, 0.2, "cv", 3)
    assert load_config(CleanConfig()).scheme == "dling" and load_config(CleanConfig()).tau == 0.1
    cfg = load_config(path, {"folds": 6, "epochs": 2, "scheme": "dling", "members": ["regnetx_002", "resnet18"]})
    assert cfg.folds == 6 and cfg.scheme == "dling"
    assert [m.arch for m in cfg.members] == ["regnetx_002", "resnet18"]
    assert all(m.epochs == 2 for m in cfg.members)
    assert cfg.resolved_min_flags(5) == 5 and cfg.scheme == "dling"


@pytest.mark.parametrize(
    "data,message",
    [
        ({"scheme": "kfold"}, "scheme = 'kfold': expected one of dling, cv"),
        ({"folds": 1}, "folds = 1: expected an integer >= 2"),
        ({"tau": 1.5}, r"tau = 1\.5: expected a number in \[0, 1\]"),
        ({"scheme": "cv", "min_flags": 2}, "min_flags"),
        ({"members": [{"arch": "a", "optimizer": "lion"}]}, "optimizer = 'lion': expected one of sgd, adamw"),
        ({"members": [{"arch": "a"}, {"arch": "a"}]}, "unique"),
        ({"members": []}, "non-empty"),
        ({"augment": {"hflip": 0.0}, "tta": {"views": 8}}, "deterministic TTA has 6 views"),
    ],
)
def test_invalid_values_are_explained(tmp_path, data, message):
    with pytest.raises(DataCleanerError, match=message):
        load_config(write(tmp_path, data))


@pytest.mark.parametrize(
    "data,message",
    [
        ({"members": [{"arch": "resnet18", "lr": "fast"}]}, r"members\[0\]\.lr = 'fast': expected a number > 0"),
        ({"members": [{"arch": "resnet18", "lr": 0}]}, r"members\[0\]\.lr = 0: expected a number > 0"),
        ({"members": [{"arch": "resnet18", "epochs": 2.5}]}, r"members\[0\]\.epochs = 2\.5: expected an integer"),
        ({"members": [{"arch": "resnet18", "pretrained": "yes"}]}, r"pretrained = 'yes': expected true or false"),
        ({"members": [{"arch": "resnet18", "momentum": 1.0}]}, r"momentum = 1\.0: expected a number in \[0, 1\)"),
        ({"members": [{"arch": "resnet18", "std": [0.2, 0.2]}]}, r"members\[0\]\.std = \[0\.2, 0\.2\]: expected three numbers"),
        ({"members": [{"arch": 18}]}, r"members\[0\]\.arch = 18: expected a text"),
        ({"folds": "five"}, r"folds = 'five': expected an integer"),
        ({"folds": True}, r"folds = True: expected an integer"),
        ({"cache_memory_gb": -1}, r"cache_memory_gb = -1: expected a number >= 0"),
        ({"min_flags": 0}, r"min_flags = 0: expected an integer >= 1"),
        ({"weights_dir": 3}, r"weights_dir = 3: expected a text or null"),
        ({"tta": {"views": "4"}}, r"tta\.views = '4': expected an integer"),
        ({"augment": {"hflip": 2}}, r"augment\.hflip = 2: expected a number in \[0, 1\]"),
        ({"augment": {"scale": [0.9, 0.5]}}, r"augment\.scale = \[0\.9, 0\.5\]: expected \[low, high\]"),
        ({"members": 3}, r"members = 3: expected a non-empty list of members"),
        ({"tta": 4}, r"'tta' must be a mapping"),
    ],
)
def test_every_value_is_checked_by_type_and_range(tmp_path, data, message):
    """One line naming the key, the value and what is expected, before any work starts."""
    with pytest.raises(DataCleanerError, match=message) as caught:
        load_config(write(tmp_path, data))
    assert "\n" not in str(caught.value)


def test_overrides_and_config_objects_are_checked_too():
    with pytest.raises(DataCleanerError, match="folds = 'x': expected an integer"):
        load_config("small", {"folds": "x"})
    cfg = CleanConfig()
    cfg.members[0].lr = "fast"
    with pytest.raises(DataCleanerError, match=r"members\[0\]\.lr = 'fast'"):
        load_config(cfg)
    assert load_config("small", {"tau": 1}).tau == 1.0 and isinstance(load_config("small", {"tau": 1}).tau, float)


def test_built_in_profiles_are_committees_of_different_pretrained_architectures(tmp_path):
    assert set(profile_names()) >= {"cpu", "gpu", "small"}
    for name in profile_names():
        cfg, origin = resolve_config(name)
        assert origin.profile == name and origin.reason == "built-in profile given by name"
        archs = [m.arch for m in cfg.members]
        assert len(set(archs)) >= 2, name
        assert not any(m.pretrained_file for m in cfg.members), name  # no paths to files anywhere
        if name != "small":
            assert all(m.pretrained for m in cfg.members), name
        text = profile_text(name)
        assert text.startswith("# ") and "../" not in text
        copy = tmp_path / f"{name}.yaml"  # `profiles show NAME` output, saved and loaded as a file
        copy.write_text(text)
        assert load_config(copy) == cfg
    assert [m.frozen for m in load_config("cpu").members] == [True, True]


def test_config_names_a_profile_or_a_file(tmp_path):
    with pytest.raises(DataCleanerError, match=r"config cpux does not exist; pass a YAML file or a built-in profile \(cpu, gpu, small"):
        load_config("cpux")
    path = write(tmp_path, {"folds": 3, "weights_dir": "weights", "members": [{"arch": "resnet10t"}, {"arch": "regnetx_002"}]})
    cfg, origin = resolve_config(path)
    assert origin.profile == str(path) and cfg.folds == 3
    assert cfg.weights_dir == str(tmp_path / "weights")  # relative to the config file


def test_no_config_picks_the_profile_for_this_machine():
    import torch

    cfg, origin = resolve_config(None)
    expected = "gpu" if torch.cuda.is_available() else "cpu"
    assert origin.profile == expected and "no --config given" in origin.reason
    assert cfg == load_config(expected)
    assert resolve_config(None, {"device": "cpu"})[1].profile == "cpu"
