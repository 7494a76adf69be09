"""Train on a decoded set with torchvision's ImageFolder, as code written for real datasets does.

    ddcodec decode set.ddz --format imagefolder -o set_png/
    python examples/imagefolder_training.py set_png/

The PNGs are plain 8-bit images; normalise them with the set's own mean/std
(normalization.json beside them), and test images the same way.
"""

import json
import sys
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from torchvision import datasets, transforms

root = Path(sys.argv[1])
norm = json.loads((root / "normalization.json").read_text())
transform = transforms.Compose([transforms.ToTensor(),
                                transforms.Normalize(norm["mean"], norm["std"])])
data = datasets.ImageFolder(str(root), transform=transform)
record = json.loads((root / "classes.json").read_text())
names = record["class_names"]
# Folders are named NNN_<class> (made portable: other characters become _), so ImageFolder's
# sorted order is the set's class order; classes.json maps each folder to its class name.
assert data.classes == record["folders"], "the folders are not the export's"
print(f"{len(data)} images of {len(names)} classes: {', '.join(names[:3])}, ...")
torch.manual_seed(0)  # the same network and batches on every run
loader = torch.utils.data.DataLoader(data, batch_size=256, shuffle=True)
x0, _ = data[0]
net = nn.Sequential(nn.Conv2d(x0.shape[0], 64, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2),
                    nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                    nn.Flatten(), nn.Linear(64, len(data.classes)))
opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
for epoch in range(50):
    for x, y in loader:
        loss = F.cross_entropy(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
print(f"final training loss {loss.item():.3f}")
