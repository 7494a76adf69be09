"""Train your own network on a ddcodec set file with a plain PyTorch loop (no ddcodec needed).

    python examples/train_on_set.py dm10.pt
"""

import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

s = torch.load(sys.argv[1], weights_only=True)
images, labels = s["images"], s["labels"]  # already in the normalised space below
mean = torch.tensor(s["normalization"]["mean"]).view(1, -1, 1, 1)
std = torch.tensor(s["normalization"]["std"]).view(1, -1, 1, 1)
c, h, w = s["image_shape"]

torch.manual_seed(0)  # the same network and batches on every run
net = nn.Sequential(nn.Conv2d(c, 64, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2),
                    nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                    nn.Flatten(), nn.Linear(64, s["num_classes"]))
opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
for epoch in range(100):
    loss = F.cross_entropy(net(images), labels)
    opt.zero_grad()
    loss.backward()
    opt.step()
print(f"final training loss {loss.item():.3f}")

# Test images must get the same normalisation as the set: (pixels/255 - mean) / std.
if s["provenance"].get("data") == "cifar10-subset":
    import ddcodec.data

    archive = np.load(ddcodec.data.BUNDLED_DIR / "cifar10-subset.npz")
    x = torch.from_numpy(archive["x_test"]).permute(0, 3, 1, 2).float() / 255
    y = torch.from_numpy(archive["y_test"]).long()
    with torch.no_grad():
        acc = (net((x - mean) / std).argmax(1) == y).float().mean()
    print(f"test accuracy {100 * acc:.1f} %")
