"""A teacher: the network whose soft labels carry knowledge into a distilled set.

Trained on the training split under the evaluation protocol (SGD, DSA, lr x0.1 at half), with a
class-stratified part of the *training* split held out; the checkpoint is chosen on that part,
never on the test split. Which checkpoint: `best` (highest held-out accuracy, the default) or
`early` (the first within `early_margin` of the best: early, weaker checkpoints can label small
sets better, wave2.md §1.4 / no-distillation Table 7), or `last`. The test accuracy of the chosen
checkpoint is measured afterwards and only reported.

The file is a plain dict of tensors and numbers, loadable with torch.load(weights_only=True).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from ddcodec import seeds
from ddcodec.data.datasets import Dataset, Normalization
from ddcodec.errors import DDCodecError
from ddcodec.version import __version__
from ddcodec.fileio import atomic_path, check_writable, load_tagged
from ddcodec.names import canonical_arch
from ddcodec.labels.teacher_config import TeacherConfig
from ddcodec.training.networks import seeded_network
from ddcodec.training.trainer import EvalConfig, accuracy, train_network

TEACHER_FORMAT = "ddcodec-teacher"
CHECKPOINT_FORMAT = "ddcodec-teacher-checkpoint"


@dataclass(frozen=True)
class TeacherCheckpoint:
    """Where a long teacher run (hours on Tiny-ImageNet's CPU) keeps its state between epochs,
    so a stopped run goes on from its last saved epoch to the very teacher of an unbroken one."""
    path: Path
    every: int = 1  # epochs between saves; 0: none
    resume: bool = False


@dataclass
class Teacher:
    arch: str
    num_classes: int
    image_shape: tuple[int, int, int]
    normalization: Normalization
    state: dict
    info: dict  # data, chosen epoch, held-out accuracies, test accuracy, config

    def network(self, device: torch.device) -> torch.nn.Module:
        c, h, w = self.image_shape
        net = seeded_network(self.arch, c, self.num_classes, (h, w), 0, device)
        net.load_state_dict(self.state)
        return net.eval()

    @torch.no_grad()
    def probabilities(self, images: torch.Tensor, temperature: float,
                      device: torch.device, batch: int = 500) -> torch.Tensor:
        """softmax(logits / T) of normalised images, float32, on the CPU."""
        net = self.network(device)
        rows = [torch.softmax(net(images[i:i + batch].to(device)).double() / temperature, 1)
                for i in range(0, images.shape[0], batch)]
        return torch.cat(rows).float().cpu() if rows else torch.zeros(0, self.num_classes)

    def to_dict(self) -> dict:
        return {"format": TEACHER_FORMAT, "version": 1, "arch": self.arch,
                "num_classes": self.num_classes, "image_shape": list(self.image_shape),
                "normalization": self.normalization.to_dict(), "state_dict": self.state,
                "info": self.info, "ddcodec_version": __version__}

    def save(self, path: str | Path, force: bool = False) -> Path:
        path = check_writable(path, force)
        with atomic_path(path) as tmp:
            torch.save(self.to_dict(), tmp)
        return path


def load_teacher(path: str | Path) -> Teacher:
    path = Path(path)
    if not path.is_file():
        raise DDCodecError(f"teacher {path} not found")
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:
        raise DDCodecError(f"{path} is not a readable teacher (damaged, or not made by "
                           "ddcodec teacher)") from None
    if not isinstance(raw, dict) or raw.get("format") != TEACHER_FORMAT:
        raise DDCodecError(f"{path} is not a ddcodec teacher (make one with ddcodec teacher)")
    try:
        return Teacher(canonical_arch(raw["arch"]), int(raw["num_classes"]),
                       tuple(int(v) for v in raw["image_shape"]),
                       Normalization.from_dict(raw["normalization"]), dict(raw["state_dict"]),
                       dict(raw.get("info", {})))
    except (KeyError, TypeError, ValueError) as exc:
        raise DDCodecError(f"{path}: damaged teacher ({exc})") from None


def check_teacher_fits(teacher: Teacher, num_classes: int, image_shape, normalization,
                       what: str) -> None:
    """Refuse a teacher made for other data: class count, image shape or normalisation."""
    if teacher.num_classes != num_classes or tuple(teacher.image_shape) != tuple(image_shape):
        raise DDCodecError(f"the teacher was made for {teacher.num_classes} classes of "
                           f"{tuple(teacher.image_shape)} images; {what} has {num_classes} of "
                           f"{tuple(image_shape)}")
    same = all(math.isclose(a, b, rel_tol=1e-4, abs_tol=1e-5) for a, b in zip(
        teacher.normalization.mean + teacher.normalization.std,
        normalization.mean + normalization.std))
    if not same:
        raise DDCodecError(f"the teacher was trained on other data (normalisation "
                           f"{teacher.normalization.to_dict()}; {what}: "
                           f"{normalization.to_dict()})")


def holdout_split(dataset: Dataset, share: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(train indices, held-out indices): `share` of each class, at least one image each."""
    kept, held = [], []
    for c in range(dataset.num_classes):
        pool = dataset.indices_of_class(c)
        order = pool[torch.randperm(len(pool), generator=seeds.keyed("teacher_holdout", seed,
                                                                     c))]
        n = max(1, round(share * len(pool)))
        if n >= len(pool):
            raise DDCodecError(f"class {dataset.class_names[c]!r} has too few training images "
                               "to hold any out")
        held.append(order[:n])
        kept.append(order[n:])
    return torch.cat(kept), torch.cat(held)


def _read_checkpoint(checkpoint: TeacherCheckpoint, mine: dict) -> dict:
    """The saved state, refused in one line when another data set or other settings made it."""
    if not checkpoint.path.is_file():
        raise DDCodecError(f"no teacher checkpoint to resume from at {checkpoint.path}")
    state = load_tagged(checkpoint.path, CHECKPOINT_FORMAT, "teacher checkpoint")
    saved = state.get("settings", {})
    changed = sorted(k for k in mine if saved.get(k) != mine[k])
    if changed:
        raise DDCodecError(f"{checkpoint.path} was made with other settings "
                           f"({', '.join(changed)}); resume with the same options or start "
                           "afresh")
    return state


def train_teacher(dataset: Dataset, config: TeacherConfig, device: torch.device,
                  on_epoch=None, checkpoint: TeacherCheckpoint | None = None) -> Teacher:
    train_index, held_index = holdout_split(dataset, config.holdout, config.seed)
    images = dataset.train_images()
    held_x, held_y = images[held_index], dataset.y_train[held_index]
    protocol = EvalConfig(arch=config.arch, epochs=config.epochs, lr=config.lr,
                          batch_size=config.batch_size)
    history: list[float] = []
    snapshots: list[dict] = []
    mine = {**asdict(config), "data": dataset.spec, "train_images": int(len(train_index))}
    resume = None
    if checkpoint is not None and checkpoint.resume:
        state = _read_checkpoint(checkpoint, mine)
        resume, history, snapshots = state["trainer"], state["history"], state["snapshots"]

    def after_epoch(epoch: int, net) -> None:
        history.append(accuracy(net, held_x, held_y, device))
        snapshots.append({k: v.detach().cpu().clone() for k, v in net.state_dict().items()})

    def keep(trainer: dict) -> None:
        if checkpoint is None or not checkpoint.every or (
                trainer["epochs_done"] % checkpoint.every and
                trainer["epochs_done"] != config.epochs):
            return
        with atomic_path(checkpoint.path) as tmp:
            torch.save({"format": CHECKPOINT_FORMAT, "settings": mine, "trainer": trainer,
                        "history": history, "snapshots": snapshots}, tmp)

    train_network(images[train_index], dataset.y_train[train_index], dataset.num_classes,
                  protocol, config.seed, device, on_epoch, after_epoch, resume=resume, keep=keep)
    best = max(history)
    chosen = {"best": history.index(best), "last": len(history) - 1,
              "early": next(i for i, a in enumerate(history)
                            if a >= best - config.early_margin)}[config.pick]
    teacher = Teacher(config.arch, dataset.num_classes, dataset.image_shape,
                      dataset.normalization, snapshots[chosen], {})
    test = accuracy(teacher.network(device), dataset.test_images(), dataset.y_test, device)
    teacher.info = {"data": dataset.spec, "epoch": chosen + 1, "holdout_accuracy": history,
                    "chosen_holdout_accuracy": history[chosen], "test_accuracy": test,
                    "train_images": int(len(train_index)), "held_out_images": int(len(held_index)),
                    "config": asdict(config),
                    "note": "checkpoint chosen on the held-out part of the training split; "
                            "the test accuracy is reported only"}
    return teacher
