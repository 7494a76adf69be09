"""Train your own network on a ddcodec set file with a plain PyTorch loop (no ddcodec needed).

    python examples/train_on_set.py dm10.pt
"""

import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

s = torch.load(sys.argv[1], weights_only=True)
images, labels = s["images"], s["labels"]  # normalised: (pixels/255 - mean) / std
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

# Test images must get the same normalisation as the set: (pixels/255 - mean) / std;
# ddcodec's public test_split gives the real test split of the set's data, so normalised.
if s["provenance"].get("data"):
    import ddcodec

    set_file = ddcodec.load_set(sys.argv[1])
    x, y = ddcodec.test_split(s["provenance"]["data"], normalization=set_file.normalization)
    with torch.no_grad():
        acc = (net(x).argmax(1) == y).float().mean()
    print(f"test accuracy {100 * acc:.1f} %")
