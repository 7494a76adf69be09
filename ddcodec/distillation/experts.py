"""Expert trajectories for trajectory matching: networks trained on the real data, with their
parameters saved after every epoch.

As MTT's `buffer.py`: SGD at lr 0.01 with no momentum, no weight decay and no decay, batch 256,
augmentation on (ours is DSA; MTT used DC's crop-scale-rotate). A folder holds `experts.json`
(what the experts were trained on and how) and one `expert_NNN.pt` per expert, a float32 tensor
of shape (epochs + 1, parameters). Each expert is written atomically when it finishes, so an
interrupted or repeated `ddcodec experts` reuses the finished ones.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from ddcodec import seeds
from ddcodec.data.augment import DSA, DSAParams
from ddcodec.data.datasets import Dataset
from ddcodec.distillation.config import ExpertConfig  # noqa: F401 - re-exported
from ddcodec.errors import DDCodecError
from ddcodec.version import __version__
from ddcodec.fileio import atomic_path
from ddcodec.training.networks import canonical_arch, seeded_network
from ddcodec.distillation.partition import block_ranges

MANIFEST = "experts.json"
FORMAT = "ddcodec-experts"


def flat_parameters(net: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in net.parameters()]).float().cpu()


def expert_path(root: Path, index: int) -> Path:
    return root / f"expert_{index:03d}.pt"


def _manifest(dataset: Dataset, config: ExpertConfig) -> dict:
    c, h, w = dataset.image_shape
    return {"format": FORMAT, "data": dataset.spec, "num_classes": dataset.num_classes,
            "image_shape": [c, h, w], "normalization": dataset.normalization.to_dict(),
            **asdict(config), "ddcodec_version": __version__}


def _same_training(a: dict, b: dict) -> bool:
    keys = ("data", "num_classes", "image_shape", "normalization", "arch", "epochs", "lr",
            "batch_size", "dsa_strategy", "seed")
    return all(a.get(k) == b.get(k) for k in keys)


def train_expert(dataset: Dataset, config: ExpertConfig, index: int, device: torch.device,
                 on_epoch: Callable[[int, int], None] | None = None) -> torch.Tensor:
    """One expert's trajectory: (epochs + 1, parameters), epoch 0 being the initialisation."""
    c, h, w = dataset.image_shape
    net = seeded_network(config.arch, c, dataset.num_classes, (h, w),
                         seeds.derive("expert_network", config.seed, index), device)
    net.train()
    optimizer = torch.optim.SGD(net.parameters(), lr=config.lr)
    generator = seeds.generator("expert_draws", config.seed, index)
    augment = DSA(DSAParams(strategy=config.dsa_strategy))
    images = dataset.train_images().to(device)
    labels = dataset.y_train.to(device)
    snapshots = [flat_parameters(net)]
    for epoch in range(config.epochs):
        order = torch.randperm(len(images), generator=generator).to(device)
        for start in range(0, len(images), config.batch_size):
            batch = order[start:start + config.batch_size]
            loss = F.cross_entropy(net(augment(images[batch], generator)), labels[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        snapshots.append(flat_parameters(net))
        if on_epoch is not None:
            on_epoch(index, epoch)
    return torch.stack(snapshots)


def train_experts(dataset: Dataset, root: Path, config: ExpertConfig, device: torch.device,
                  on_epoch: Callable[[int, int], None] | None = None) -> dict:
    """Train the experts missing from `root`; return {trained, reused, folder}."""
    root = Path(root)
    manifest = _manifest(dataset, config)
    if (root / MANIFEST).exists():
        existing = _read_manifest(root)
        if not _same_training(existing, manifest):
            raise DDCodecError(f"{root} holds experts trained otherwise (other data or "
                               "settings); choose another folder")
    elif root.exists() and not root.is_dir():
        raise DDCodecError(f"{root} exists and is not a folder")
    root.mkdir(parents=True, exist_ok=True)
    with atomic_path(root / MANIFEST) as tmp:
        Path(tmp).write_text(json.dumps(manifest, indent=1) + "\n")
    trained = reused = 0
    for index in range(config.num_experts):
        path = expert_path(root, index)
        if path.exists():
            reused += 1
            continue
        trajectory = train_expert(dataset, config, index, device, on_epoch)
        with atomic_path(path) as tmp:
            torch.save(trajectory, tmp)
        trained += 1
    return {"folder": str(root), "trained": trained, "reused": reused,
            "num_experts": config.num_experts, "epochs": config.epochs}


def block_folder(root: Path, block: int, blocks: int) -> Path:
    return Path(root) / f"block-{block:04d}-of-{blocks:04d}"


def train_block_experts(dataset: Dataset, root: Path, config: ExpertConfig, device: torch.device,
                        on_epoch: Callable[[int, int], None] | None = None) -> dict:
    """D3's subtask experts: for each of `config.blocks` contiguous blocks, `num_experts`
    k-way networks trained on that block's data alone, in root/block-BBBB-of-NNNN/."""
    from dataclasses import replace


    reports = []
    for block, classes in enumerate(block_ranges(dataset.num_classes, config.blocks)):
        reports.append(train_experts(dataset.of_classes(classes),
                                     block_folder(root, block, config.blocks),
                                     replace(config, blocks=1), device, on_epoch))
    return {"folder": str(root), "blocks": config.blocks,
            "trained": sum(r["trained"] for r in reports),
            "reused": sum(r["reused"] for r in reports),
            "num_experts": config.num_experts, "epochs": config.epochs}


def _read_manifest(root: Path) -> dict:
    try:
        manifest = json.loads((root / MANIFEST).read_text())
    except (OSError, ValueError) as exc:
        raise DDCodecError(f"{root / MANIFEST} is not readable (damaged, or not made by "
                           "ddcodec)") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise DDCodecError(f"{root / MANIFEST} is not a ddcodec experts manifest")
    return manifest


class ExpertBuffer:
    """The finished experts of a folder, loaded one trajectory at a time (they are large)."""

    def __init__(self, root: Path, manifest: dict, files: list[Path]):
        self.root, self.manifest, self.files = root, manifest, files
        self.epochs = int(manifest["epochs"])
        self._cached: tuple[int, torch.Tensor] | None = None
        c, h, w = manifest["image_shape"]
        net = seeded_network(manifest["arch"], c, manifest["num_classes"], (h, w), 0,
                             torch.device("cpu"))
        self.num_parameters = sum(p.numel() for p in net.parameters())

    @classmethod
    def open(cls, root, dataset: Dataset, arch: str) -> "ExpertBuffer":
        if root is None:
            raise DDCodecError("--loss tm needs --experts DIR (make one with `ddcodec experts`)")
        root = Path(root)
        if not (root / MANIFEST).is_file():
            raise DDCodecError(f"{root} holds no experts ({MANIFEST} missing); "
                               "make them with `ddcodec experts`")
        manifest = _read_manifest(root)
        if manifest.get("data") != dataset.spec or manifest.get("image_shape") != list(
                dataset.image_shape) or manifest.get("num_classes") != dataset.num_classes:
            raise DDCodecError(f"{root} holds experts of {manifest.get('data')}, not of "
                               f"{dataset.spec}")
        if canonical_arch(arch) != manifest.get("arch"):
            raise DDCodecError(f"{root} holds {manifest.get('arch')} experts; distil with "
                               f"--arch {manifest.get('arch')}")
        files = sorted(root.glob("expert_*.pt"))
        if not files:
            raise DDCodecError(f"{root} holds no finished expert yet")
        return cls(root, manifest, files)

    @property
    def count(self) -> int:
        return len(self.files)

    def network(self, device: torch.device) -> nn.Module:
        """A network of the experts' architecture (its own weights are never used)."""
        c, h, w = self.manifest["image_shape"]
        net = seeded_network(self.manifest["arch"], c, self.manifest["num_classes"], (h, w), 0,
                             device)
        for p in net.parameters():
            p.requires_grad_(False)
        return net

    def trajectory(self, index: int) -> torch.Tensor:
        if self._cached is not None and self._cached[0] == index:
            return self._cached[1]
        path = self.files[index]
        try:
            trajectory = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise DDCodecError(f"{path} is not a readable expert (damaged, or not made by "
                               "ddcodec)") from exc
        if (not isinstance(trajectory, torch.Tensor) or trajectory.dim() != 2
                or trajectory.shape != (self.epochs + 1, self.num_parameters)):
            raise DDCodecError(f"{path} does not hold a trajectory of {self.epochs + 1} x "
                               f"{self.num_parameters} parameters")
        self._cached = (index, trajectory.float())
        return self._cached[1]
