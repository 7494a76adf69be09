"""Names that configs and the command line validate without loading torch: the network
architectures the protocol trains, the field's default DSA strategy, the pixel codings and the
set formats `encode` reads."""

from __future__ import annotations

from ddcodec.errors import DDCodecError

ARCHITECTURES = ("convnet", "convnet-d4", "convnet-d5", "resnet18", "resnet18-bn", "vgg11")
_ALIASES = {
    "convnet": "convnet", "convnetd3": "convnet", "convnet3": "convnet",
    "convnetd4": "convnet-d4", "convnet4": "convnet-d4",
    "convnetd5": "convnet-d5", "convnet5": "convnet-d5",
    "resnet18": "resnet18", "resnet18bn": "resnet18-bn", "vgg11": "vgg11",
}
BUNDLED_DATA = "cifar10-subset"  # the real CIFAR-10 subset shipped with ddcodec
DEFAULT_STRATEGY = "color_crop_cutout_flip_scale_rotate"  # DSA's default for CIFAR (DC/DSA code)
PIXEL_MODES = ("lossless", "8bit")  # how `encode` codes a pixel set's values
SET_SOURCES = ("auto", "set", "mtt", "tensors", "imagefolder", "hf", "fkd")  # what `encode` reads
LABEL_LOSSES = ("ce", "kl")  # how soft labels train; the index is what a .ddz stores


def canonical_arch(name: str) -> str:
    key = name.lower().replace("-", "").replace("_", "")
    if key not in _ALIASES:
        raise DDCodecError(f"unknown architecture {name!r}; choose one of "
                           f"{', '.join(ARCHITECTURES)}")
    return _ALIASES[key]
# ZCA whitening's eps as MTT and DD-Ranking fit it (kornia ZCAWhitening(eps=0.1))
DEFAULT_ZCA_EPS = 0.1
# The view strategy of per-epoch soft labels whose views are an FKD relabelling's (crops, flips
# and mixing kept in the file's "fkd views" section) instead of keyed DSA draws
FKD_VIEW_STRATEGY = "fkd"
