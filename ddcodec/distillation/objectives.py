"""Utility objectives: how well a synthetic set stands in for the real data.

An objective is called with the synthetic images (normalised, class-ordered, `counts[c]` images
of class c, 0 for a class another process distils) and the iteration number, and returns a
differentiable scalar. A class's own draws (its real batch, its DSA draw) are keyed by (seed,
class, iteration); block-level draws come from the objective's generator, whose state
`state()`/`load_state()` save and restore so that resumed runs repeat an uninterrupted one
exactly. Objectives with learnable state of their own (the
student learning rate of trajectory matching) step it in `update()`, which the caller runs after
each backward pass, and report it through `summary()` into the set's provenance.

Three objectives, one per family of the field: distribution matching (DM), gradient matching
(DC/DSA) and trajectory matching (MTT).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Protocol

import torch
import torch.nn.functional as F

from ddcodec import seeds
from ddcodec.data.augment import DSA, DSAParams
from ddcodec.data.datasets import Dataset
from ddcodec.devices import compiled
from ddcodec.distillation.config import gradient_matching_loops
from ddcodec.distillation.random_subset import sample_class_indices
from ddcodec.training.networks import seeded_network
from ddcodec.registry import registrar
from ddcodec.distillation.experts import ExpertBuffer, block_folder
from ddcodec.distillation.partition import block_ranges

if TYPE_CHECKING:
    from ddcodec.distillation import DistillConfig


class Objective(Protocol):
    def __call__(self, synthetic: torch.Tensor, counts: list[int],
                 iteration: int) -> torch.Tensor: ...

    def state(self) -> dict: ...

    def load_state(self, state: dict) -> None: ...

    def update(self, grad_scale: float = 1.0) -> None: ...

    def summary(self) -> dict: ...


def class_labels(counts: list[int], device: torch.device) -> torch.Tensor:
    return torch.repeat_interleave(torch.arange(len(counts), device=device),
                                   torch.tensor(counts, device=device))


class DistributionMatching:
    """DM (Zhao & Bilen): match per-class mean embeddings of a fresh random frozen network.

    Iteration i uses the network seeded by (seed, i); every class draws `batch_real` real images
    and one siamese DSA draw for its real and synthetic images from its own stream (seed, class,
    i). The loss is a sum of per-class terms: a class's gradient depends on no other class.
    """

    def __init__(self, dataset: Dataset, arch: str, batch_real: int, dsa_strategy: str,
                 seed: int, device: torch.device, kernel: str = "linear"):
        self.dataset, self.arch, self.seed, self.device = dataset, arch, seed, device
        self.augment = DSA(DSAParams(strategy=dsa_strategy))
        self.real_per_class = [min(batch_real, len(dataset.indices_of_class(c)))
                               for c in range(dataset.num_classes)]
        self.kernel = KERNEL_LOSSES[kernel]
        self.embed = compiled(embed)  # `embed` itself unless --compile

    def __call__(self, synthetic: torch.Tensor, counts: list[int], iteration: int) -> torch.Tensor:
        ds = self.dataset
        c, h, w = ds.image_shape
        net = seeded_network(self.arch, c, ds.num_classes, (h, w),
                             seeds.derive("matching_network", self.seed, iteration),
                             self.device)
        for p in net.parameters():
            p.requires_grad_(False)
        present = [(cls, syn) for cls, syn in enumerate(synthetic.split(counts)) if len(syn)]
        real_batches, syn_batches = [], []
        for cls, syn in present:
            real, plan = class_batch(ds, cls, self.real_per_class[cls], self.augment, self.seed,
                                     iteration, self.device)
            real_batches.append(self.augment.apply(real, plan))
            syn_batches.append(self.augment.apply(syn, plan))
        real_embed = embed_without_grad(net, torch.cat(real_batches), self.embed)
        syn_embed = self.embed(net, torch.cat(syn_batches))
        loss = synthetic.new_zeros(())
        real_sizes = [self.real_per_class[cls] for cls, _ in present]
        syn_sizes = [len(syn) for _, syn in present]
        for r, s in zip(real_embed.split(real_sizes), syn_embed.split(syn_sizes)):
            loss = loss + self.kernel(r, s)
        return loss

    def state(self) -> dict:
        return {}  # every draw is keyed by (seed, class, iteration)

    def load_state(self, state: dict) -> None:
        pass

    def update(self, grad_scale: float = 1.0) -> None:
        pass

    def summary(self) -> dict:
        return {}


# Real images per forward of the real branch, for 32 x 32 images (fewer for larger ones): the
# branch has no graph, so chunks cost nothing but bound memory; one 100-class 64 x 64 batch of
# 6,400 real images in one forward took 23 GB. A 10-class CIFAR batch (640) is one chunk.
REAL_CHUNK_PIXELS = 1024 * 32 * 32


def embed(net: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
    """A network's features: what distribution matching compares (a function of the network,
    so one compiled version serves every fresh network of an iteration)."""
    return net.embed(images)


def embed_without_grad(net: torch.nn.Module, images: torch.Tensor, embedding=embed
                       ) -> torch.Tensor:
    """The real branch's embeddings, about 70 % of a DM iteration: under inference mode, in
    chunks of about REAL_CHUNK_PIXELS pixels, in channels-last layout (1.45x faster on CPU,
    measured; the float sums change order, by about 1e-5 of the features), cloned out of
    inference mode so a loss may save them for backward."""
    with torch.inference_mode():
        layout = {} if images.dim() != 4 else {"memory_format": torch.channels_last}
        chunk = max(1, REAL_CHUNK_PIXELS // max(1, images[0, 0].numel()))
        embedded = torch.cat([embedding(net, part.contiguous(**layout))
                              for part in images.split(chunk)])
    return embedded.clone()


def mean_embedding_loss(real: torch.Tensor, syn: torch.Tensor) -> torch.Tensor:
    """DM's term: squared distance of the mean embeddings (MMD with a linear kernel)."""
    return ((real.mean(0) - syn.mean(0)) ** 2).sum()


MMD_BANDWIDTHS = (1, 2, 4, 8, 16)  # D3's (mmd.py), as multiples of a quarter of the base


def mixture_rbf_mmd_loss(real: torch.Tensor, syn: torch.Tensor) -> torch.Tensor:
    """D3's distribution term: unbiased MMD^2 under a sum of Gaussian kernels whose widths
    span 16:1 like D3's (1 to 16). D3 applies them to raw features, whose scale changes with
    every random network; here they are placed around h, the median squared distance between
    the class's real embeddings (widths sqrt(h)/4 to 4 sqrt(h)), and the MMD is multiplied by h
    (detached), which makes its small-distance limit DM's mean-embedding loss in scale, so
    lambda keeps its meaning."""
    d_rr = torch.cdist(real, real).pow(2)
    d_ss = torch.cdist(syn, syn).pow(2)
    d_rs = torch.cdist(real, syn).pow(2)
    n, m = real.shape[0], syn.shape[0]
    off = d_rr[~torch.eye(n, dtype=torch.bool, device=real.device)]
    h = (off.median() if off.numel() else d_rs.detach().median()).detach().clamp_min(1e-12)

    def k(d: torch.Tensor) -> torch.Tensor:
        return sum(torch.exp(-d / (2 * h * (b / 4) ** 2)) for b in MMD_BANDWIDTHS)

    def within(d: torch.Tensor, size: int) -> torch.Tensor:
        if size < 2:  # one point: no pair to average; its self-similarity is constant
            return d.new_zeros(())
        return (k(d).sum() - size * len(MMD_BANDWIDTHS)) / (size * (size - 1))

    return h * (within(d_rr, n) + within(d_ss, m) - 2 * k(d_rs).mean())


KERNEL_LOSSES = {"linear": mean_embedding_loss, "rbf": mixture_rbf_mmd_loss}


def class_batch(dataset: Dataset, cls: int, size: int, augment: DSA, seed: int, iteration: int,
                device: torch.device):
    """A class's real batch (normalised, on `device`) and its siamese DSA draw at an iteration,
    from the class's own stream."""
    generator = seeds.keyed("class_matching_draws", seed, cls, iteration)
    index = sample_class_indices(dataset, cls, size, generator)
    real = dataset.normalization.normalize(dataset.x_train[index]).to(device)
    return real, augment.draw(real.shape, generator, shared=True)


# ---------------------------------------------------------------------------- gradient matching
def gradient_distance(syn_grads, real_grads) -> torch.Tensor:
    """DC's layer-wise distance: sum over output rows of 1 - cos; biases and norms ignored."""
    total = syn_grads[0].new_zeros(())
    for gs, gr in zip(syn_grads, real_grads):
        if gs.dim() == 1:
            continue
        gs, gr = gs.flatten(1), gr.flatten(1)
        cos = (gs * gr).sum(1) / (gs.norm(dim=1) * gr.norm(dim=1) + 1e-6)
        total = total + (1 - cos).sum()
    return total


class GradientMatching:
    """Gradient matching with DSA (Zhao et al.): per class, the synthetic images' gradient of the
    network's loss must point where the real images' gradient points.

    One call is one outer step of the reference: every `outer_loop` calls a fresh network seeded
    by (seed, iteration // outer_loop); between outer steps of the same network, it trains for
    `inner_loop` epochs on the (updated) synthetic set with SGD at `lr_net`, as the reference.
    The real and synthetic images of a class share one DSA draw (siamese augmentation); a
    class's real batch and draw come from its own stream (seed, class, iteration), the inner
    loop's from the block's stream.
    """

    def __init__(self, dataset: Dataset, arch: str, batch_real: int, dsa_strategy: str,
                 seed: int, device: torch.device, outer_loop: int, inner_loop: int,
                 lr_net: float = 0.01, batch_train: int = 256):
        self.dataset, self.arch, self.seed, self.device = dataset, arch, seed, device
        self.outer_loop, self.inner_loop = outer_loop, inner_loop
        self.lr_net, self.batch_train = lr_net, batch_train
        self.augment = DSA(DSAParams(strategy=dsa_strategy))
        self.generator = seeds.generator("matching_draws", seed)
        self.real_per_class = [min(batch_real, len(dataset.indices_of_class(c)))
                               for c in range(dataset.num_classes)]
        self.net: torch.nn.Module | None = None
        self.net_optimizer: torch.optim.Optimizer | None = None
        self.net_round = -1

    def _network(self, round_: int) -> None:
        c, h, w = self.dataset.image_shape
        self.net = seeded_network(self.arch, c, self.dataset.num_classes, (h, w),
                                  seeds.derive("matching_network", self.seed, round_),
                                  self.device)
        self.net.train()
        self.net_optimizer = torch.optim.SGD(self.net.parameters(), lr=self.lr_net)
        self.net_round = round_

    def _train_inner(self, synthetic: torch.Tensor, counts: list[int]) -> None:
        labels = class_labels(counts, synthetic.device)
        n = synthetic.shape[0]
        for _ in range(self.inner_loop):
            order = torch.randperm(n, generator=self.generator).to(synthetic.device)
            for start in range(0, n, self.batch_train):
                batch = order[start:start + self.batch_train]
                x = self.augment(synthetic[batch], self.generator)
                loss = F.cross_entropy(self.net(x), labels[batch])
                self.net_optimizer.zero_grad(set_to_none=True)
                loss.backward()
                self.net_optimizer.step()

    def __call__(self, synthetic: torch.Tensor, counts: list[int], iteration: int) -> torch.Tensor:
        round_, step = divmod(iteration, self.outer_loop)
        if round_ != self.net_round or step == 0:
            self._network(round_)
        elif self.inner_loop:  # the previous outer step updated the images: train on them
            self._train_inner(synthetic.detach(), counts)
        ds = self.dataset
        params = [p for p in self.net.parameters() if p.requires_grad]
        loss = synthetic.new_zeros(())
        for cls, syn in enumerate(synthetic.split(counts)):
            if not len(syn):
                continue
            real, plan = class_batch(ds, cls, self.real_per_class[cls], self.augment, self.seed,
                                     iteration, self.device)
            target = torch.full((len(real),), cls, device=self.device)
            real_loss = F.cross_entropy(self.net(self.augment.apply(real, plan)), target)
            real_grads = [g.detach() for g in torch.autograd.grad(real_loss, params)]
            syn_target = torch.full((len(syn),), cls, device=self.device)
            syn_loss = F.cross_entropy(self.net(self.augment.apply(syn, plan)), syn_target)
            syn_grads = torch.autograd.grad(syn_loss, params, create_graph=True)
            loss = loss + gradient_distance(syn_grads, real_grads)
        return loss

    def state(self) -> dict:
        state = {"generator": self.generator.get_state(), "net_round": self.net_round}
        if self.net is not None:
            state["net"] = self.net.state_dict()
            state["net_optimizer"] = self.net_optimizer.state_dict()
        return state

    def load_state(self, state: dict) -> None:
        self.generator.set_state(state["generator"])
        if "net" in state:
            self._network(state["net_round"])
            self.net.load_state_dict(state["net"])
            self.net_optimizer.load_state_dict(state["net_optimizer"])

    def update(self, grad_scale: float = 1.0) -> None:
        if self.net is not None:  # the outer backward also filled the network's gradients
            self.net_optimizer.zero_grad(set_to_none=True)

    def summary(self) -> dict:
        return {}


# --------------------------------------------------------------------------- trajectory matching
class TrajectoryMatching:
    """Trajectory matching (MTT, Cazenavette et al.): a student starting at a stored expert's
    epoch-t parameters takes `syn_steps` SGD steps on the synthetic set with a learned step size
    and should land where the expert was at epoch t + `expert_epochs`; the loss is the squared
    distance to that point over the expert's own distance travelled. The step size (`syn_lr`) is
    learned by SGD (momentum 0.5) at `lr_lr` and is what evaluation should train with.
    """

    def __init__(self, dataset: Dataset, experts: "ExpertBuffer", syn_steps: int,
                 expert_epochs: int, max_start_epoch: int, lr_teacher: float, lr_lr: float,
                 batch_syn: int | None, dsa_strategy: str, seed: int, device: torch.device,
                 first_class: int = 0):
        self.dataset, self.experts, self.device = dataset, experts, device
        self.first_class = first_class  # block experts: their class 0 is this class
        self.syn_steps, self.expert_epochs = syn_steps, expert_epochs
        self.max_start_epoch = max(1, min(max_start_epoch, experts.epochs - expert_epochs + 1))
        self.batch_syn = batch_syn
        self.augment = DSA(DSAParams(strategy=dsa_strategy))
        self.generator = seeds.generator("matching_draws", seed)
        self.syn_lr = torch.tensor(float(lr_teacher), device=device, requires_grad=True)
        self.lr_optimizer = torch.optim.SGD([self.syn_lr], lr=lr_lr, momentum=0.5)
        self.net = experts.network(device)
        self.shapes = [(name, p.shape) for name, p in self.net.named_parameters()]

    def _unflatten(self, flat: torch.Tensor) -> dict[str, torch.Tensor]:
        out, offset = {}, 0
        for name, shape in self.shapes:
            n = shape.numel()
            out[name] = flat[offset:offset + n].view(shape)
            offset += n
        return out

    def __call__(self, synthetic: torch.Tensor, counts: list[int], iteration: int) -> torch.Tensor:
        g = self.generator
        expert = int(torch.randint(self.experts.count, (1,), generator=g))
        start = int(torch.randint(self.max_start_epoch, (1,), generator=g))
        trajectory = self.experts.trajectory(expert)
        begin = trajectory[start].to(self.device)
        target = trajectory[start + self.expert_epochs].to(self.device)
        labels = class_labels(counts, synthetic.device) - self.first_class
        n = synthetic.shape[0]
        batch = min(self.batch_syn or n, n)
        student = begin.clone().requires_grad_(True)
        for _ in range(self.syn_steps):
            index = torch.randperm(n, generator=g)[:batch].to(synthetic.device)
            x = self.augment(synthetic[index], g)
            logits = torch.func.functional_call(self.net, self._unflatten(student), (x,))
            ce = F.cross_entropy(logits, labels[index])
            grad = torch.autograd.grad(ce, student, create_graph=True)[0]
            student = student - self.syn_lr * grad
        travelled = ((begin - target) ** 2).sum().clamp_min(1e-12)
        return ((student - target) ** 2).sum() / travelled

    def state(self) -> dict:
        return {"generator": self.generator.get_state(), "syn_lr": self.syn_lr.detach().cpu(),
                "lr_optimizer": self.lr_optimizer.state_dict()}

    def load_state(self, state: dict) -> None:
        self.generator.set_state(state["generator"])
        with torch.no_grad():
            self.syn_lr.copy_(state["syn_lr"])
        self.lr_optimizer.load_state_dict(state["lr_optimizer"])

    def update(self, grad_scale: float = 1.0) -> None:
        """Step the student learning rate (its gradient divided by the caller's loss weight, so
        that lr_lr means what it means in MTT); keep it positive, since evaluation uses it."""
        if self.syn_lr.grad is not None:
            self.syn_lr.grad.mul_(grad_scale)
            self.lr_optimizer.step()
        self.lr_optimizer.zero_grad(set_to_none=True)
        with torch.no_grad():
            self.syn_lr.clamp_(min=1e-6)

    def summary(self) -> dict:
        return {"syn_lr": float(self.syn_lr.detach())}


ObjectiveFactory = Callable[..., Objective]  # (dataset, config, device, images per class,
# classes=the block a trainer distils, or None)
OBJECTIVES: dict[str, ObjectiveFactory] = {}
register_objective = registrar(OBJECTIVES)  # @register_objective("dm"): what --loss dm builds


@register_objective("dm")
def _distribution_matching(dataset, config, device, images_per_class, classes=None):
    m = config.matching
    kernel = config.distribution.kernel if config.param == "distribution" else "linear"
    return DistributionMatching(dataset, m.arch, m.batch_real, m.dsa_strategy, config.seed,
                                device, kernel)


@register_objective("gm")
def _gradient_matching(dataset, config, device, images_per_class, classes=None):
    m, gm = config.matching, config.gm
    outer, inner = gradient_matching_loops(images_per_class)
    return GradientMatching(dataset, m.arch, m.batch_real, m.dsa_strategy, config.seed, device,
                            outer_loop=gm.outer_loop or outer,
                            inner_loop=inner if gm.inner_loop is None else gm.inner_loop,
                            lr_net=gm.lr_net)


@register_objective("tm")
def _trajectory_matching(dataset, config, device, images_per_class, classes=None):
    """MTT on the experts of --experts DIR; a block of classes (`classes`) uses its block's
    experts (DIR/block-BBBB-of-NNNN, from `ddcodec experts --blocks B`) when DIR has them,
    the global experts otherwise."""
    m, tm = config.matching, config.tm
    root, data, first = tm.experts, dataset, 0
    if config.blocks > 1 and classes is not None and tm.experts is not None:
        ranges = block_ranges(dataset.num_classes, config.blocks)
        block = next((b for b, r in enumerate(ranges) if list(r) == list(classes)), None)
        folder = block_folder(tm.experts, block, config.blocks) if block is not None else None
        if folder is not None and folder.is_dir():
            root, data, first = folder, dataset.of_classes(ranges[block]), ranges[block][0]
    experts = ExpertBuffer.open(root, data, m.arch)
    return TrajectoryMatching(dataset, experts, tm.syn_steps, tm.expert_epochs,
                              tm.max_start_epoch, tm.lr_teacher, tm.lr_lr, tm.batch_syn,
                              m.dsa_strategy, config.seed, device, first_class=first)


def make_objective(dataset: Dataset, config: "DistillConfig", device: torch.device,
                   images_per_class: int, classes=None) -> Objective:
    """The utility objective `config.loss` names (a resolved config); `classes`: the block a
    trainer distils, for objectives with block-specific parts (TM's block experts)."""
    factory = OBJECTIVES.get(config.loss)
    if factory is None:
        raise ValueError(f"no objective for loss {config.loss!r}")
    return factory(dataset, config, device, images_per_class, classes=classes)
