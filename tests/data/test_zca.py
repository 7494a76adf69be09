"""ZCA whitening as kornia fits it: the unbiased covariance, eps on the eigenvalues, and an exact
inverse; cached on disk by the training images it was fitted on."""

import pytest
import torch

from ddcodec.data.datasets import Normalization, load_dataset
from ddcodec.data.zca import MAX_FEATURES, fit_zca, zca_for
from ddcodec.errors import DDCodecError


def correlated(n=4000, d=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    mix = torch.randn(d, d, generator=g)
    return (torch.randn(n, d, generator=g) @ mix + 3.0).view(n, 3, 2, 2)


def test_whitened_training_data_has_the_covariance_eps_leaves():
    x = correlated()
    eps = 0.1
    zca = fit_zca(x, eps)
    flat = x.reshape(len(x), -1).to(torch.float64)
    cov = torch.cov(flat.T)
    values, vectors = torch.linalg.eigh(cov)
    # W cov W = U diag(S / (S + eps)) U^T: the identity, shrunk where the variance is small
    want = (vectors * (values / (values + eps))) @ vectors.T
    white = zca.whiten(x).reshape(len(x), -1).to(torch.float64)
    assert torch.allclose(torch.cov(white.T), want, atol=1e-4)
    assert float(white.mean(0).abs().max()) < 1e-4


def test_unwhiten_inverts_whiten():
    x = correlated()
    zca = fit_zca(x, 0.1)
    assert torch.allclose(zca.unwhiten(zca.whiten(x)), x, atol=1e-4)


def test_bad_inputs_get_one_line():
    with pytest.raises(DDCodecError, match="at least 2"):
        fit_zca(torch.zeros(1, 3, 2, 2))
    with pytest.raises(DDCodecError, match="at most"):
        fit_zca(torch.zeros(2, MAX_FEATURES + 1, 1, 1))
    zca = fit_zca(correlated())
    with pytest.raises(DDCodecError, match="12 values per image"):
        zca.whiten(torch.zeros(2, 3, 4, 4))


def test_the_fit_is_cached_by_its_training_images(tmp_path, monkeypatch):
    monkeypatch.setenv("DDCODEC_CACHE", str(tmp_path))
    ds = load_dataset("cifar10-subset").of_classes(range(1))
    unit = Normalization((0.0,) * 3, (1.0,) * 3)
    first = zca_for(ds, unit, 0.1)
    assert len(list(tmp_path.glob("zca-*.pt"))) == 1
    again = zca_for(ds, unit, 0.1)
    assert torch.equal(first.transform, again.transform)
    zca_for(ds, unit, 0.2)  # another eps is another fit
    assert len(list(tmp_path.glob("zca-*.pt"))) == 2
    next(tmp_path.glob("zca-*.pt")).write_bytes(b"damaged")
    assert torch.equal(zca_for(ds, unit, 0.1).transform, first.transform)
