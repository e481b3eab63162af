import pytest
import yaml

from datacleaner.config import load_config
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
    assert load_config().scheme == "dling" and load_config().tau == 0.1
    cfg = load_config(path, {"folds": 6, "epochs": 2, "scheme": "dling", "members": ["regnetx_002", "resnet18"]})
    assert cfg.folds == 6 and cfg.scheme == "dling"
    assert [m.arch for m in cfg.members] == ["regnetx_002", "resnet18"]
    assert all(m.epochs == 2 for m in cfg.members)
    assert cfg.resolved_min_flags(5) == 5 and cfg.scheme == "dling"


@pytest.mark.parametrize(
    "data,message",
    [
        ({"scheme": "kfold"}, "scheme 'kfold'"),
        ({"folds": 1}, "folds must be"),
        ({"tau": 1.5}, "tau must lie"),
        ({"scheme": "cv", "min_flags": 2}, "min_flags"),
        ({"members": [{"arch": "a", "optimizer": "lion"}]}, "optimizer 'lion'"),
        ({"members": [{"arch": "a", "pretrained_file": "nowhere.safetensors"}]}, "does not exist"),
        ({"members": [{"arch": "a"}, {"arch": "a"}]}, "unique"),
        ({"members": []}, "non-empty"),
        ({"augment": {"hflip": 0.0}, "tta": {"views": 8}}, "deterministic TTA has 6 views"),
    ],
)
def test_invalid_values_are_explained(tmp_path, data, message):
    with pytest.raises(DataCleanerError, match=message):
        load_config(write(tmp_path, data))


def test_shipped_configs_load(tmp_path):
    """Every config in configs/ loads; one whose offline weights are absent (a fresh clone has no
    ../shared/weights) names the missing file, and loads with hub weights instead."""
    from pathlib import Path

    import yaml

    for path in (Path(__file__).parent.parent / "configs").glob("*.yaml"):
        raw = yaml.safe_load(path.read_text())
        files = [(path.parent / m["pretrained_file"]).resolve() for m in raw["members"] if m.get("pretrained_file")]
        if all(f.is_file() for f in files):
            cfg = load_config(path)
        else:
            with pytest.raises(DataCleanerError, match=r"pretrained_file .*\.safetensors does not exist"):
                load_config(path)
            raw["members"] = [{**m, "pretrained_file": None, "pretrained": True} for m in raw["members"]]
            cfg = load_config(write(tmp_path, raw))
        assert len(cfg.members) >= 2, path
