"""The backbones the field distils and evaluates with, for any channel count and image size.

* `convnet` (= ConvNet-D3), `convnet-d4`, `convnet-d5`: blocks of 3x3 conv (width 128) ->
  GroupNorm(C, C) (the reference code's "instance norm") -> ReLU -> 2x2 average pooling, then a
  linear head. As in the reference, 28x28 inputs get padding 3 in the first conv (seen as 32x32).
* `resnet18` (instance norm, as the reference's default) and `resnet18-bn`: the CIFAR variant
  (3x3 stem, no max-pool).
* `vgg11` (instance norm) for cross-architecture checks.

Every network has `embed(x)` (the features before the head, what distribution matching compares).
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from ddcodec.names import ARCHITECTURES, canonical_arch  # noqa: F401


def instance_norm(channels: int) -> nn.Module:
    return nn.GroupNorm(channels, channels, affine=True)


class ConvNet(nn.Module):
    def __init__(self, channels: int, num_classes: int, image_size: tuple[int, int],
                 width: int = 128, depth: int = 3):
        super().__init__()
        h, w = image_size
        layers: list[nn.Module] = []
        in_ch = channels
        for d in range(depth):
            pad = 3 if d == 0 and (h, w) == (28, 28) else 1
            layers += [nn.Conv2d(in_ch, width, 3, padding=pad), instance_norm(width),
                       nn.ReLU(inplace=True)]
            h, w = h + 2 * pad - 2, w + 2 * pad - 2
            if h >= 2 and w >= 2:  # stop pooling once the map is a single pixel wide
                layers.append(nn.AvgPool2d(2, 2))
                h, w = h // 2, w // 2
            in_ch = width
        self.features = nn.Sequential(*layers)
        self.feature_dim = width * h * w
        self.classifier = nn.Linear(self.feature_dim, num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.embed(x))


class _BasicBlock(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, stride: int, norm):
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1, bias=False)
        self.bn1 = norm(out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, stride=1, padding=1, bias=False)
        self.bn2 = norm(out_ch)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_ch != out_ch:
            self.shortcut = nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride=stride, bias=False),
                                          norm(out_ch))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet18(nn.Module):
    def __init__(self, channels: int, num_classes: int, batch_norm: bool = False):
        super().__init__()
        norm = nn.BatchNorm2d if batch_norm else instance_norm
        self.stem = nn.Sequential(nn.Conv2d(channels, 64, 3, padding=1, bias=False), norm(64),
                                  nn.ReLU(inplace=True))
        blocks, in_ch = [], 64
        for out_ch, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            blocks += [_BasicBlock(in_ch, out_ch, stride, norm),
                       _BasicBlock(out_ch, out_ch, 1, norm)]
            in_ch = out_ch
        self.blocks = nn.Sequential(*blocks)
        self.feature_dim = 512
        self.classifier = nn.Linear(512, num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return F.adaptive_avg_pool2d(self.blocks(self.stem(x)), 1).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.embed(x))


class VGG11(nn.Module):
    PLAN = (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M")

    def __init__(self, channels: int, num_classes: int, image_size: tuple[int, int]):
        super().__init__()
        h, w = image_size
        layers: list[nn.Module] = []
        in_ch, first = channels, True
        for item in self.PLAN:
            if item == "M":
                if h >= 2 and w >= 2:
                    layers.append(nn.MaxPool2d(2, 2))
                    h, w = h // 2, w // 2
                continue
            pad = 3 if first and image_size == (28, 28) else 1
            layers += [nn.Conv2d(in_ch, item, 3, padding=pad), instance_norm(item),
                       nn.ReLU(inplace=True)]
            h, w = h + 2 * pad - 2, w + 2 * pad - 2
            in_ch, first = item, False
        self.features = nn.Sequential(*layers)
        self.feature_dim = 512
        self.classifier = nn.Linear(512, num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return F.adaptive_avg_pool2d(self.features(x), 1).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.embed(x))


NetworkFactory = Callable[[int, int, tuple[int, int]], nn.Module]  # channels, classes, size
NETWORKS: dict[str, NetworkFactory] = {
    "convnet": lambda c, k, size: ConvNet(c, k, size, depth=3),
    "convnet-d4": lambda c, k, size: ConvNet(c, k, size, depth=4),
    "convnet-d5": lambda c, k, size: ConvNet(c, k, size, depth=5),
    "resnet18": lambda c, k, size: ResNet18(c, k, batch_norm=False),
    "resnet18-bn": lambda c, k, size: ResNet18(c, k, batch_norm=True),
    "vgg11": lambda c, k, size: VGG11(c, k, size),
}
assert set(NETWORKS) == set(ARCHITECTURES), "every architecture name has a network"


def build_network(arch: str, channels: int, num_classes: int,
                  image_size: tuple[int, int]) -> nn.Module:
    return NETWORKS[canonical_arch(arch)](channels, num_classes, image_size)


def seeded_network(arch: str, channels: int, num_classes: int, image_size: tuple[int, int],
                   seed: int, device: torch.device | str = "cpu") -> nn.Module:
    """A freshly initialised network whose weights depend only on `seed` (not on global state)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = build_network(arch, channels, num_classes, image_size)
    return net.to(device)
