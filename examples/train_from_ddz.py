"""Train a network straight from a .ddz: no decode step, no files in between.

    python examples/train_from_ddz.py set.ddz [EPOCHS]

`ddcodec.open` decodes the file once; its Dataset yields (image, target) in the set's network
input space, soft rows when the file carries soft labels, and `set_epoch` replays per-epoch
labels' views and a distributional set's fresh samples, as `ddcodec measure` trains.
"""

import sys

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader

import ddcodec

opened = ddcodec.open(sys.argv[1])
epochs = int(sys.argv[2]) if len(sys.argv) > 2 else 100
info = opened.info()
print(f"{info['num_images']} images of {info['num_classes']} classes, "
      f"{info['bpc']:,.0f} bits per class")

data = opened.dataset()
c, h, w = info["image_shape"]
torch.manual_seed(0)  # the same network and batches on every run
net = nn.Sequential(nn.Conv2d(c, 64, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2),
                    nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                    nn.Flatten(), nn.Linear(64, info["num_classes"]))
opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
loader = DataLoader(data, batch_size=256, shuffle=True)
for epoch in range(epochs):
    data.set_epoch(epoch)
    for images, targets in loader:
        logits = net(images)
        if targets.is_floating_point():  # a soft label's row
            loss = -(targets * F.log_softmax(logits, 1)).sum(1).mean()
        else:
            loss = F.cross_entropy(logits, targets)
        opt.zero_grad()
        loss.backward()
        opt.step()
print(f"final training loss {loss.item():.3f}")

data_spec = opened.set.provenance.get("data")
if data_spec:  # the real test split, made into the set's input space (whitened for ZCA sets)
    from ddcodec.data.datasets import load_dataset

    test = load_dataset(data_spec)
    with torch.no_grad():
        accuracy = (net(opened.test_inputs(test)).argmax(1) == test.y_test).float().mean()
    print(f"test accuracy {100 * accuracy:.1f} %")
