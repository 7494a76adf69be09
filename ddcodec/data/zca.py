"""ZCA whitening as the field's CIFAR methods use it (MTT, DATM, FTD, DD-Ranking's `use_zca`).

Their sets live in a whitened space: the transform is fitted on the whole training split (the
pixels in [0, 1] for CIFAR and Tiny-ImageNet, i.e. no mean/std first), with the unbiased
covariance and eps 0.1 added to its eigenvalues (kornia's `ZCAWhitening(eps=0.1)`):
    whiten(x) = (flat(x) - mean) @ W,   W = U diag(1 / sqrt(S + eps)) U^T
Networks trained on such a set must see the test images through the same transform, or they
score near chance (mtt-distillation #11).

A .ddz never stores the D x D matrix (37 MB for 32 x 32 x 3, far more than a distilled set):
it records eps and the data, and the transform is rebuilt from that data's training images. The
fit runs in float64 (eigh of the symmetric covariance), so a rebuild matches the source's up to
its own float32 rounding; it is cached on disk beside the folder cache, keyed by the training
images' bytes, the normalisation and eps.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import torch

from ddcodec.data.datasets import Dataset, Normalization
from ddcodec.data.folder_cache import cache_dir
from ddcodec.errors import DDCodecError
from ddcodec.fileio import atomic_path
from ddcodec.names import DEFAULT_ZCA_EPS as DEFAULT_EPS
MAX_FEATURES = 3 * 64 * 64  # D x D float64 is 1.2 GB at Tiny-ImageNet's size
CHUNK = 4096  # rows per step of the covariance and of a transform
CACHE_VERSION = 1


@dataclass(frozen=True)
class ZCA:
    """A fitted whitening: `mean` (D), `transform` and `inverse` (D x D), float32."""

    mean: torch.Tensor
    transform: torch.Tensor
    inverse: torch.Tensor
    eps: float

    def whiten(self, images: torch.Tensor) -> torch.Tensor:
        return self._apply(images, self.transform, self.mean, before=True)

    def unwhiten(self, images: torch.Tensor) -> torch.Tensor:
        return self._apply(images, self.inverse, self.mean, before=False)

    def _apply(self, images, matrix, mean, before: bool) -> torch.Tensor:
        flat = images.reshape(images.shape[0], -1).to(torch.float32)
        if flat.shape[1] != mean.numel():
            raise DDCodecError(f"the whitening was fitted on {mean.numel()} values per image; "
                               f"these images have {flat.shape[1]}")
        out = torch.empty_like(flat)
        for start in range(0, flat.shape[0], CHUNK):
            rows = flat[start:start + CHUNK]
            out[start:start + CHUNK] = ((rows - mean) @ matrix if before
                                        else rows @ matrix + mean)
        return out.view(images.shape)


def fit_zca(images: torch.Tensor, eps: float = DEFAULT_EPS) -> ZCA:
    """The whitening of `images` (N x C x H x W floats), fitted as kornia does."""
    n = int(images.shape[0])
    flat = images.reshape(n, -1)
    d = int(flat.shape[1])
    if d > MAX_FEATURES:
        raise DDCodecError(f"ZCA on {d} values per image needs a {d} x {d} matrix; ddcodec "
                           f"whitens images of at most {MAX_FEATURES} values (64 x 64 x 3)")
    if n < 2:
        raise DDCodecError("ZCA needs at least 2 training images")
    mean = flat.to(torch.float64).mean(0)
    cov = torch.zeros(d, d, dtype=torch.float64)
    for start in range(0, n, CHUNK):
        rows = flat[start:start + CHUNK].to(torch.float64) - mean
        cov.addmm_(rows.T, rows)
    cov /= n - 1
    values, vectors = torch.linalg.eigh(cov)
    values = values.clamp_min(0)  # round-off can leave tiny negative eigenvalues
    transform = (vectors * torch.rsqrt(values + eps)) @ vectors.T
    inverse = (vectors * torch.sqrt(values + eps)) @ vectors.T
    return ZCA(mean.to(torch.float32), transform.to(torch.float32),
               inverse.to(torch.float32), float(eps))


def zca_for(dataset: Dataset, normalization: Normalization, eps: float) -> ZCA:
    """The whitening fitted on `dataset`'s training images in `normalization`'s space, from the
    disk cache when it was fitted before."""
    digest = hashlib.sha256(f"v{CACHE_VERSION}|{list(normalization.mean)}|"
                            f"{list(normalization.std)}|{float(eps)!r}|"
                            f"{tuple(dataset.x_train.shape)}".encode())
    digest.update(dataset.x_train.contiguous().numpy().tobytes())
    path = cache_dir() / f"zca-{digest.hexdigest()[:24]}.pt"
    cached = _read(path, int(dataset.x_train[0].numel()))
    if cached is not None:
        return ZCA(**cached, eps=float(eps))
    zca = fit_zca(normalization.normalize(dataset.x_train), eps)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            torch.save({"mean": zca.mean, "transform": zca.transform,
                        "inverse": zca.inverse}, tmp)
    except OSError:
        pass  # no cache: only slower next time
    return zca


def _read(path, d: int) -> dict | None:
    if not path.is_file():
        return None
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
        ok = (raw["mean"].shape == (d,) and raw["transform"].shape == (d, d)
              and raw["inverse"].shape == (d, d))
    except Exception:  # a damaged entry is fitted afresh (and rewritten)
        return None
    return {k: raw[k] for k in ("mean", "transform", "inverse")} if ok else None


@dataclass(frozen=True)
class WhitenedSpace:
    """The input space of a ZCA set: the normalisation, then the whitening. It stands wherever
    a `Normalization` makes network inputs from 8-bit images (test images, random real
    controls)."""

    normalization: Normalization
    zca: ZCA

    @property
    def mean(self):
        return self.normalization.mean

    @property
    def std(self):
        return self.normalization.std

    def normalize(self, images_uint8: torch.Tensor) -> torch.Tensor:
        return self.zca.whiten(self.normalization.normalize(images_uint8))

    def denormalize(self, images: torch.Tensor) -> torch.Tensor:
        """Back to [0, 1] pixels (unclamped): un-whitened, then un-normalised."""
        return self.normalization.denormalize(self.zca.unwhiten(images))
