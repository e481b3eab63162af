import math

import pytest
import torch
from safetensors.torch import save_file

from datacleaner.config import MemberConfig
from datacleaner.errors import DataCleanerError
from datacleaner.models import MemberLoss, create_member_model, lr_factor, member_preprocess


def test_pretrained_file_loads_local_weights_and_replaces_the_head(tmp_path):
    source = create_member_model(MemberConfig(arch="resnet10t"), 7, seed=1)
    path = tmp_path / "w.safetensors"
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(path))
    member = MemberConfig(arch="resnet10t", pretrained_file=str(path))
    loaded = create_member_model(member, 3, seed=2)
    fresh = create_member_model(MemberConfig(arch="resnet10t"), 3, seed=2)
    a, b = source.state_dict(), loaded.state_dict()
    torch.testing.assert_close(a["conv1.0.weight"], b["conv1.0.weight"])
    assert not torch.equal(b["conv1.0.weight"], fresh.state_dict()["conv1.0.weight"])
    assert b["fc.weight"].shape == (3, 512)


def test_bad_architecture_and_bad_weights_file_are_explained(tmp_path):
    with pytest.raises(DataCleanerError, match="not a timm architecture"):
        create_member_model(MemberConfig(arch="resnet_doesnotexist"), 3)
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not weights")
    with pytest.raises(DataCleanerError, match="could not load pretrained weights"):
        create_member_model(MemberConfig(arch="resnet10t", pretrained_file=str(junk)), 3)


def test_preprocess_comes_from_the_timm_data_config_unless_overridden():
    prep = member_preprocess(MemberConfig(arch="resnet10t"))
    assert prep.size == 176  # resnet10t.c3_in1k trains at 176 px
    assert prep.mean == pytest.approx((0.485, 0.456, 0.406)) and prep.std == pytest.approx((0.229, 0.224, 0.225))
    prep = member_preprocess(MemberConfig(arch="resnet10t", img_size=32, mean=[0.5] * 3, std=[0.25] * 3))
    assert (prep.size, prep.mean, prep.std) == (32, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))


def test_losses_match_hand_computed_values():
    logits = torch.tensor([[2.0, 0.0, 0.0]])
    target = torch.tensor([0])
    logp = torch.log_softmax(logits, 1)[0]
    ce = -logp[0].item()
    assert MemberLoss()(logits, target).item() == pytest.approx(ce, rel=1e-6)
    smooth = -(0.9 + 0.1 / 3) * logp[0] - (0.1 / 3) * (logp[1] + logp[2])
    assert MemberLoss(label_smoothing=0.1)(logits, target).item() == pytest.approx(smooth.item(), rel=1e-6)
    p = math.exp(logp[0].item())
    assert MemberLoss(focal_gamma=2.0)(logits, target).item() == pytest.approx((1 - p) ** 2 * ce, rel=1e-5)
    assert MemberLoss(flooding=1.0)(logits, target).item() == pytest.approx(abs(ce - 1.0) + 1.0, rel=1e-6)


def test_lr_schedule_warmup_cosine_and_restarts():
    assert lr_factor(0, total=100, warmup=10, schedule="cosine", cycle=0) == pytest.approx(0.01)
    assert lr_factor(10, total=100, warmup=10, schedule="cosine", cycle=0) == pytest.approx(1.0)
    assert lr_factor(55, total=100, warmup=10, schedule="cosine", cycle=0) == pytest.approx(0.5)
    assert lr_factor(100, total=100, warmup=10, schedule="cosine", cycle=0) == pytest.approx(0.0)
    # cycles start at step 0 (the first after the warmup) and end with the lr near 0
    assert lr_factor(29, total=90, warmup=10, schedule="cosine_restarts", cycle=30) < 0.01
    assert lr_factor(30, total=90, warmup=10, schedule="cosine_restarts", cycle=30) == pytest.approx(1.0)
    assert lr_factor(45, total=90, warmup=10, schedule="cosine_restarts", cycle=30) == pytest.approx(0.5)
    assert lr_factor(89, total=90, warmup=10, schedule="cosine_restarts", cycle=30) < 0.01
    for step in range(90):  # one cycle as long as training is plain cosine
        assert lr_factor(step, total=90, warmup=10, schedule="cosine_restarts", cycle=90) == lr_factor(
            step, total=90, warmup=10, schedule="cosine", cycle=0)
    assert lr_factor(50, total=100, warmup=0, schedule="constant", cycle=0) == 1.0
