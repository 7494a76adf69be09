"""Pixel-space distillation: the synthetic images are free pixels, learnt under one objective.

Only the pixels learn (SGD with momentum 0.5, the learning rate per loss as the references: DM 1,
DC/DSA 0.1, MTT 100), starting from random real images of each class (or noise). Objectives with
learnable state of their own (MTT's student learning rate) step it after every update.

A run may keep its state in a checkpoint every N iterations and after its last: the pixels, the
optimizer's momentum, the objective's state and the iterations done. Every draw of an iteration
is keyed by (seed, class, iteration), so a resumed run continues exactly where the uninterrupted
one would be, and a finished run resumed with more `--iterations` goes on to them: one run
gives the sets of a convergence study (500, 2,000, 5,000 iterations), each equal to a run
straight to its count.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from ddcodec import seeds
from ddcodec.data.datasets import Dataset
from ddcodec.distillation.objectives import make_objective
from ddcodec.distillation.random_subset import random_real_subset
from ddcodec.errors import DDCodecError
from ddcodec.fileio import atomic_path, load_tagged
from ddcodec.distillation.config import recorded_settings

if TYPE_CHECKING:
    from ddcodec.distillation import DistillConfig, ProgressHook


CHECKPOINT_FORMAT = "ddcodec-pixel-checkpoint"


@dataclass(frozen=True)
class PixelCheckpoints:
    """Where a pixel run keeps its state (`path`), how often (`every` iterations; 0: never),
    and whether it starts from it (`resume`)."""

    path: Path | None = None
    every: int = 0
    resume: bool = False


def distill_pixels(dataset: Dataset, config: "DistillConfig", device: torch.device,
                   on_iteration: "ProgressHook | None" = None,
                   checkpoints: PixelCheckpoints = PixelCheckpoints()):
    """Return (images, labels, summary of the objective's learnt state)."""
    images, labels = random_real_subset(dataset, config.pixels.ipc, config.seed)
    if config.pixels.init == "noise":
        per_class = images.shape[0] // dataset.num_classes
        images = torch.cat([torch.randn(per_class, *images.shape[1:],
                                        generator=seeds.keyed("pixel_init_noise", config.seed, c))
                            for c in range(dataset.num_classes)])
    synthetic = images.to(device).requires_grad_(True)
    optimizer = torch.optim.SGD([synthetic], lr=config.pixels.lr_img,
                                momentum=config.pixels.momentum)
    objective = make_objective(dataset, config, device, config.pixels.ipc)
    start = 0
    if checkpoints.resume:
        start = _restore(checkpoints.path, config, dataset, synthetic, optimizer, objective)
    counts = [config.pixels.ipc] * dataset.num_classes
    total = config.matching.iterations
    for iteration in range(start, total):
        loss = objective(synthetic, counts, iteration)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        objective.update()
        if on_iteration is not None:
            on_iteration(iteration, float(loss.detach()) / dataset.num_classes)
        done = iteration + 1
        if checkpoints.every and checkpoints.path is not None and (
                done % checkpoints.every == 0 or done == total):
            _save(checkpoints.path, config, dataset, done, synthetic, optimizer, objective)
    return synthetic.detach(), labels, objective.summary()


def _settings(config: "DistillConfig", dataset: Dataset) -> dict:
    """What a checkpoint must share with the run that resumes it: everything but the count of
    iterations (a run may go on to more)."""
    return {"config": {k: v for k, v in recorded_settings(config).items()
                       if k != "iterations"},
            "data": dataset.spec}


def _save(path: Path, config, dataset: Dataset, done: int, synthetic: torch.Tensor,
          optimizer: torch.optim.Optimizer, objective) -> None:
    state = {"format": CHECKPOINT_FORMAT, **_settings(config, dataset), "iterations": done,
             "synthetic": synthetic.detach().cpu().clone(), "optimizer": optimizer.state_dict(),
             "objective": objective.state()}
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def _restore(path: Path | None, config, dataset: Dataset, synthetic: torch.Tensor,
             optimizer: torch.optim.Optimizer, objective) -> int:
    """Load a checkpoint into the run; the iterations it had done."""
    if path is None or not path.is_file():
        raise DDCodecError(f"no checkpoint to resume from at {path}")
    state = load_tagged(path, CHECKPOINT_FORMAT, "pixel checkpoint")
    mine = _settings(config, dataset)
    if state.get("config") != mine["config"] or state.get("data") != mine["data"]:
        theirs = state.get("config") or {}
        changed = sorted(k for k in mine["config"] if theirs.get(k) != mine["config"][k])
        raise DDCodecError(f"{path} was made with other settings ({', '.join(changed) or 'data'})"
                           "; resume with the same options (only --iterations may grow) or "
                           "start afresh")
    done = int(state["iterations"])
    if done > config.matching.iterations:
        raise DDCodecError(f"{path} holds {done:,} iterations, more than --iterations "
                           f"{config.matching.iterations:,}")
    if tuple(state["synthetic"].shape) != tuple(synthetic.shape):
        raise DDCodecError(f"{path} holds images of another shape")
    with torch.no_grad():
        synthetic.copy_(state["synthetic"].to(synthetic.device))
    optimizer.load_state_dict(state["optimizer"])
    objective.load_state(state["objective"])
    return done
