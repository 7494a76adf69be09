"""The field's standard evaluation protocol: train fresh networks on a set, test on real data.

SGD (lr 0.01, momentum 0.9, weight decay 5e-4), batch 256, E epochs with the learning rate x0.1
(and a fresh optimiser, as in the reference) at epoch E/2, DSA on, and the accuracy of the final
epoch on the whole test set (no best-epoch picking). Each run's network initialisation, shuffling
and augmentation depend only on its seed.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Callable, Iterable

import torch
import torch.nn as nn
import torch.nn.functional as F

from ddcodec import seeds
from ddcodec.data.augment import DSA, DSAParams, LabelViews
from ddcodec.devices import compiled
from ddcodec.training.checkpoint import EvalCheckpoint
from ddcodec.training.networks import seeded_network
from ddcodec.training.protocol import EvalConfig  # noqa: F401 - re-exported

Resampler = Callable[[int], tuple[torch.Tensor, torch.Tensor]]  # epoch -> (images, labels)
# epoch -> the (images, labels) batches of that epoch, in order (an FKD relabelling's replay)
Replay = Callable[[int], Iterable[tuple[torch.Tensor, torch.Tensor]]]


@dataclass
class EvalResult:
    config: EvalConfig
    accuracies: list[float] = field(default_factory=list)
    seeds: list[int] = field(default_factory=list)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.accuracies)

    @property
    def std(self) -> float:
        return statistics.pstdev(self.accuracies) if len(self.accuracies) > 1 else 0.0


def learning_rate(config: EvalConfig, epoch: int) -> float:
    """The protocol's schedule: lr, divided by 10 from half the epochs on."""
    return config.lr * 0.1 if config.epochs > 1 and epoch >= config.epochs // 2 else config.lr


def soft_label_loss(logits: torch.Tensor, targets: torch.Tensor, config: EvalConfig
                    ) -> torch.Tensor:
    """The loss of soft targets (rows of probabilities), as the config names it."""
    if config.label_loss == "kl":
        log_student = F.log_softmax(logits / config.label_temperature, dim=1)
        return F.kl_div(log_student, targets, reduction="batchmean")
    return -(targets * F.log_softmax(logits, dim=1)).sum(1).mean()


def train_network(images: torch.Tensor, labels: torch.Tensor, num_classes: int,
                  config: EvalConfig, seed: int, device: torch.device,
                  on_epoch: Callable[[int], None] | None = None,
                  after_epoch: Callable[[int, nn.Module], None] | None = None,
                  views: LabelViews | None = None,
                  resample: Resampler | None = None,
                  replay: Replay | None = None, resume: dict | None = None,
                  keep: Callable[[dict], None] | None = None) -> nn.Module:
    """Train one fresh network on (images, labels); labels are class indices or soft rows
    (trained with `soft_label_loss`). `after_epoch(epoch, net)` may look at the network.

    Per-epoch soft labels (E x N x K, with their `views`) are replayed: at epoch t each image
    is shown as the view the teacher labelled at label epoch t mod E, with that label, in place
    of a random augmentation (FKD's replay; a protocol longer than E cycles through them).

    `resample(epoch)` (distributional sets) gives each epoch's (images, labels) in place of
    the fixed ones: the means and fresh samples of every prior.

    `replay(epoch)` (an FKD relabelling) gives the epoch's batches themselves, in the
    relabelling's order, views and mixing; they replace the shuffled, augmented batches.

    `keep(state)` is given the run's whole state after each epoch (network, optimiser, draws);
    `resume=state` goes on from it, and the run ends bit for bit as one never stopped."""
    _, c, h, w = images.shape
    net = seeded_network(config.arch, c, num_classes, (h, w), seed, device)
    net.train()
    model = compiled(net)  # what the steps call: `net` itself unless --compile
    images, labels = images.to(device), labels.to(device)
    generator = seeds.generator("eval_draws", seed)
    augment = DSA(DSAParams(strategy=config.dsa_strategy)) if config.dsa else None
    lr = learning_rate(config, 0)
    optimizer = _sgd(net, lr, config)
    n = images.shape[0]
    per_epoch = labels.ndim == 3
    if per_epoch and views is None and replay is None:
        raise ValueError("per-epoch soft labels need the views they were made on")
    first = 0
    if resume is not None:
        first, lr = int(resume["epochs_done"]), float(resume["lr"])
        net.load_state_dict(resume["net"])
        optimizer = _sgd(net, lr, config)
        optimizer.load_state_dict(resume["optimizer"])
        generator.set_state(resume["generator"])
    for epoch in range(first, config.epochs):
        if learning_rate(config, epoch) != lr:  # a fresh optimizer, as the references do
            lr = learning_rate(config, epoch)
            optimizer = _sgd(net, lr, config)
        for x, y in (replay(epoch) if replay is not None else
                     _shuffled(images, labels, resample, epoch, n, generator, config, device,
                               views, augment)):
            x = x.to(device)
            if model is not net:  # compiled: one memory layout for every batch, or it
                x = x.contiguous()  # compiles again for each one an augmentation hands back
            _step(model, optimizer, x, y.to(device), config)
        if after_epoch is not None:
            after_epoch(epoch, net)
        if keep is not None:
            keep({"epochs_done": epoch + 1, "lr": lr, "net": net.state_dict(),
                  "optimizer": optimizer.state_dict(), "generator": generator.get_state()})
        if on_epoch is not None:
            on_epoch(epoch)
    return net


@torch.no_grad()
def accuracy(net: nn.Module, images: torch.Tensor, labels: torch.Tensor,
             device: torch.device, batch_size: int = 500) -> float:
    net.eval()
    correct = 0
    for start in range(0, images.shape[0], batch_size):
        x = images[start:start + batch_size].to(device)
        y = labels[start:start + batch_size].to(device)
        correct += int((net(x).argmax(1) == y).sum())
    net.train()
    return correct / images.shape[0]


def evaluate_set(images: torch.Tensor, labels: torch.Tensor, test_images: torch.Tensor,
                 test_labels: torch.Tensor, num_classes: int, config: EvalConfig, runs: int,
                 seed: int, device: torch.device,
                 on_epoch: Callable[[int, int], None] | None = None,
                 views: LabelViews | None = None,
                 resample: Resampler | None = None,
                 replay: Replay | None = None,
                 checkpoint: EvalCheckpoint | None = None) -> EvalResult:
    """Train `runs` networks (seeds seed, seed+1, ...) and test each after its last epoch;
    `views`, `resample`, `replay`: see train_network. With a `checkpoint`, the finished
    networks and the running one's state are kept in it, and a measurement started again goes
    on from them to the same figures."""
    result = EvalResult(config)
    done, current = checkpoint.load() if checkpoint is not None else ([], None)
    finished = dict(done)
    for run in range(runs):
        run_seed = seed + run
        if run_seed in finished:
            result.accuracies.append(finished[run_seed])
            result.seeds.append(run_seed)
            continue
        callback = (lambda e, r=run: on_epoch(r, e)) if on_epoch else None
        resume = current["trainer"] if current and current["seed"] == run_seed else None
        net = train_network(images, labels, num_classes, config, run_seed, device, callback,
                            views=views, resample=resample, replay=replay, resume=resume,
                            keep=checkpoint.keeper(run_seed, done) if checkpoint else None)
        result.accuracies.append(accuracy(net, test_images, test_labels, device))
        result.seeds.append(run_seed)
        if checkpoint is not None:
            done.append((run_seed, result.accuracies[-1]))
            checkpoint.finished(done)
    return result


def _shuffled(images, labels, resample, epoch: int, n: int, generator, config: EvalConfig,
              device, views, augment):
    """An epoch's batches: the images (or `resample`'s) in a fresh random order, each batch
    augmented, or shown as its labelled views when the labels are per epoch."""
    if resample is not None:
        images, labels = (t.to(device) for t in resample(epoch))
        n = images.shape[0]
    per_epoch = labels.ndim == 3
    order = torch.randperm(n, generator=generator).to(device)
    for start in range(0, n, config.batch_size):
        batch = order[start:start + config.batch_size]
        if per_epoch:
            label_epoch = epoch % labels.shape[0]
            x = views(images[batch], label_epoch, batch)
            y = labels[label_epoch][batch]
        else:
            x, y = images[batch], labels[batch]
        if augment is not None and not per_epoch:
            x = augment(x, generator)
        yield x, y


def _step(model: Callable[[torch.Tensor], torch.Tensor], optimizer, x: torch.Tensor,
          y: torch.Tensor, config: EvalConfig) -> None:
    logits = model(x)
    loss = (soft_label_loss(logits, y, config) if y.is_floating_point()
            else F.cross_entropy(logits, y))
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def _sgd(net: nn.Module, lr: float, config: EvalConfig) -> torch.optim.Optimizer:
    return torch.optim.SGD(net.parameters(), lr=lr, momentum=config.momentum,
                           weight_decay=config.weight_decay)
