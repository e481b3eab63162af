import numpy as np
import torch
from sklearn.datasets import load_digits

from datacleaner.augment import make_views, train_transform, view_params
from datacleaner.config import AugmentConfig

ZERO = torch.zeros(3)
ONE = torch.ones(3)


def digit_batch(n=3, size=16):
    from PIL import Image

    d = load_digits()
    imgs = [np.asarray(Image.fromarray((d.images[i] * 15).astype(np.uint8)).resize((size, size)).convert("RGB")) for i in range(n)]
    return np.stack(imgs)  # (n, size, size, 3) uint8


def test_deterministic_views_identity_and_flip_are_exact():
    aug = AugmentConfig(hflip=0.5)
    imgs = digit_batch()
    params = view_params(np.arange(3), 2, mode="deterministic", aug=aug, seed=0)
    views = make_views(torch.from_numpy(imgs), params, 16, ZERO, ONE)  # (6, 3, 16, 16)
    expected = torch.from_numpy(imgs).permute(0, 3, 1, 2).float() / 255
    torch.testing.assert_close(views[0::2], expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(views[1::2], expected.flip(-1), atol=1e-5, rtol=0)


def test_no_flip_views_when_training_never_flips():
    params = view_params(np.arange(2), 4, mode="deterministic", aug=AugmentConfig(hflip=0.0), seed=0)
    assert (params[..., 4] == 1).all() and (params[..., 5] == 1).all()


def test_augment_views_depend_on_image_not_batch():
    aug = AugmentConfig(hflip=0.5, rotate=15)
    all_at_once = view_params(np.arange(10), 5, mode="augment", aug=aug, seed=4)
    one_image = view_params(np.array([7]), 5, mode="augment", aug=aug, seed=4)
    np.testing.assert_array_equal(all_at_once[7], one_image[0])
    assert not np.allclose(all_at_once[7], view_params(np.array([7]), 5, mode="augment", aug=aug, seed=5)[0])
    assert (all_at_once[:, 0, :2] == 1).all()  # view 0 is the image itself
    assert (all_at_once[:, 1:, :2] <= 1).all()
    views = make_views(torch.from_numpy(digit_batch(2)), all_at_once[:2], 12, ZERO, ONE)
    assert views.shape == (10, 3, 12, 12) and torch.isfinite(views).all()


def test_training_transform_is_seeded():
    img = digit_batch(1, 20)[0]
    aug = AugmentConfig(rotate=10, hflip=0.5)
    a = [train_transform(aug, 16, seed=1)(image=img)["image"] for _ in range(2)]
    b = train_transform(aug, 16, seed=2)(image=img)["image"]
    assert a[0].shape == (16, 16, 3)
    np.testing.assert_array_equal(a[0], a[1])
    assert not np.array_equal(a[0], b)


def test_flip_views_skip_resampling_and_equal_the_resampled_ones(monkeypatch):
    """Identity and flip views are built by flipping (no grid_sample); the result is the resampled one."""
    import datacleaner.augment as augment

    aug = AugmentConfig(hflip=0.5, vflip=0.5)
    images = torch.from_numpy((load_digits().images[:6, :, :, None].repeat(3, axis=3) * 15).astype(np.uint8))
    every = view_params(np.arange(6), 10, mode="deterministic", aug=aug, seed=0)
    params = every[:, [0, 1, 8, 9]]  # identity, hflip, vflip, hvflip
    assert augment._flips_only(params) and not augment._flips_only(every[:, :3])  # a centre crop resamples
    assert not augment._flips_only(view_params(np.arange(6), 3, mode="augment", aug=aug, seed=0))
    mean, std = torch.zeros(3), torch.ones(3)
    fast = make_views(images, params, 8, mean, std)
    monkeypatch.setattr(augment, "_flips_only", lambda p: False)
    np.testing.assert_allclose(fast.numpy(), make_views(images, params, 8, mean, std).numpy(), atol=1e-6)
