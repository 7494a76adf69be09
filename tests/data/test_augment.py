import pytest
import torch

from ddcodec.data.augment import DSA, DSAParams, GROUPS


def images(n=4, c=3, h=32, w=32, seed=0):
    return torch.randn(n, c, h, w, generator=torch.Generator().manual_seed(seed))


def test_same_seed_same_augmentation():
    dsa, x = DSA(), images()
    for seed in range(20):  # covers every group
        a = dsa(x, torch.Generator().manual_seed(seed))
        b = dsa(x, torch.Generator().manual_seed(seed))
        assert torch.equal(a, b)


def test_different_seeds_give_different_augmentations():
    dsa, x = DSA(), images()
    outs = [dsa(x, torch.Generator().manual_seed(s)) for s in range(12)]
    assert len({o.sum().item() for o in outs}) > 6


@pytest.mark.parametrize("group", GROUPS)
def test_each_group_keeps_shape_and_passes_gradients(group):
    dsa = DSA(DSAParams(strategy=group))
    x = images(n=3, c=1, h=28, w=28).requires_grad_(True)
    y = dsa(x, torch.Generator().manual_seed(1))
    assert y.shape == x.shape
    y.square().sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


@pytest.mark.parametrize("group", GROUPS)
def test_siamese_draw_applies_the_same_transform_to_both_batches(group):
    dsa = DSA(DSAParams(strategy=group))
    real, syn = images(n=5), images(n=2, seed=3)
    syn_in_real = torch.cat([syn, real[2:]])  # the synthetic images also sit inside a bigger batch
    plan = dsa.draw(real.shape, torch.Generator().manual_seed(4), shared=True)
    out_big, out_small = dsa.apply(syn_in_real, plan), dsa.apply(syn, plan)
    assert torch.allclose(out_big[:2], out_small, atol=1e-6)
    assert not torch.allclose(out_small, syn) or group in ("flip", "crop", "cutout")


def test_per_sample_draws_differ_within_a_batch():
    dsa = DSA(DSAParams(strategy="rotate"))
    x = images(n=1).expand(6, -1, -1, -1).contiguous()
    y = dsa(x, torch.Generator().manual_seed(0))
    assert not torch.allclose(y[0], y[1])


def test_crop_shifts_with_zero_fill_and_cutout_zeroes_a_square():
    from ddcodec.data.augment import AugPlan

    dsa = DSA()
    x = torch.ones(1, 1, 8, 8)
    shifted = dsa.apply(x, AugPlan("crop", {"dy": torch.tensor([2]), "dx": torch.tensor([-1])}))
    assert shifted[0, 0, -2:].abs().sum() == 0 and shifted[0, 0, :, 0].abs().sum() == 0
    assert shifted.sum() == 6 * 7
    cut = dsa.apply(x, AugPlan("cutout", {"cy": torch.tensor([4]), "cx": torch.tensor([4]),
                                         "size": torch.tensor([4, 4])}))
    assert cut.sum() == 64 - 16 and cut[0, 0, 2:6, 2:6].sum() == 0


def test_unknown_strategy_is_rejected():
    with pytest.raises(ValueError, match="unknown DSA strategy"):
        DSA(DSAParams(strategy="color_warp"))
