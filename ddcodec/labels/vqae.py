"""The VQ-autoencoder rung of the soft-label ladder, for many classes.

Plain VQ stores each codebook entry as K quantised log-probabilities, so its codebook grows with
the classes (k x K integers). The autoencoder stores entries in a small code space instead:
k x d_c integers, plus one small decoder MLP (d_c -> d_h -> K logits) shared by all of them. It
pays where k x K is large next to d_c x d_h + d_h x K, i.e. at hundreds of classes.

Training (the encoder is never stored): an MLP encoder (K log-probabilities -> d_h -> d_c) and
the decoder are first fitted as a plain autoencoder under KL(p || softmax(decoder)), the loss the
labels are trained with; the codebook starts from k-means++ on the codes, then encoder, decoder
and codebook are trained with the straight-through estimator, a codebook and a commitment term.
Then the decoder's weights and the codebook are rounded to power-of-two steps, the k decoded
distributions computed once from the integers, and each sample given the entry of least
KL(p || q) among them (the decoded ones, what training will see). All draws come from one seeded
CPU generator, so a seed gives the same labels.

The architecture and the loss are this module's choices: the paper's are not public
(see docs/labels.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ddcodec.errors import DDCodecError
from ddcodec.labels.rungs.vq import kl_nearest
from ddcodec.labels.soft import LOG_FLOOR, SoftLabels

CODE_DIM, HIDDEN = 16, 64
WEIGHT_STEP_LOG2 = -7  # decoder weights: step 2^-7
CODE_STEP_LOG2 = -4  # codebook entries: step 2^-4
PRETRAIN_STEPS, VQ_STEPS = 300, 300
LR = 3e-3
COMMITMENT = 0.25


@dataclass(frozen=True)
class VQAELabels:
    code_step_log2: int
    weight_step_log2: int
    codebook: torch.Tensor  # int32 k x d_c
    weights: tuple  # int32: first layer weight (d_h x d_c) and bias, last (K x d_h) and bias
    indices: torch.Tensor  # int64 N

    def table(self) -> torch.Tensor:
        """The k decoded distributions: softmax(decoder(entry)), float64 -> float32."""
        w1, b1, w2, b2 = (t.to(torch.float64) * 2.0 ** self.weight_step_log2
                          for t in self.weights)
        z = self.codebook.to(torch.float64) * 2.0 ** self.code_step_log2
        hidden = torch.relu(z @ w1.T + b1)
        return torch.softmax(hidden @ w2.T + b2, dim=1).float()

    def probabilities(self) -> torch.Tensor:
        return self.table()[self.indices]

    @property
    def shapes(self) -> tuple[int, int, int]:
        """(k, d_c, d_h)."""
        return (int(self.codebook.shape[0]), int(self.codebook.shape[1]),
                int(self.weights[0].shape[0]))

    def to_dict(self) -> dict:
        return {"code_step_log2": self.code_step_log2,
                "weight_step_log2": self.weight_step_log2,
                "codebook": self.codebook.contiguous(),
                "weights": [t.contiguous() for t in self.weights],
                "indices": self.indices.contiguous()}


def as_vqae(probabilities: torch.Tensor, k: int, seed: int = 0, code_dim: int = CODE_DIM,
            hidden: int = HIDDEN, **meta) -> SoftLabels:
    """The VQAE rung: k codebook entries in a code_dim space and a code_dim -> hidden -> K
    decoder, both stored as integers; one index per row."""
    if k < 1 or code_dim < 1 or hidden < 1:
        raise DDCodecError("the VQ autoencoder needs k, its code size and width >= 1")
    generator = torch.Generator().manual_seed(seed)
    p = probabilities.float()
    target = p.clamp_min(math.exp(LOG_FLOOR))
    inputs = target.log()
    num_classes = p.shape[1]
    encoder = _mlp(num_classes, hidden, code_dim, generator)
    decoder = _mlp(code_dim, hidden, num_classes, generator)

    def kl(logits: torch.Tensor) -> torch.Tensor:
        return (p * (target.log() - F.log_softmax(logits, 1))).sum(1).mean()

    parameters = [*encoder.parameters(), *decoder.parameters()]
    optimizer = torch.optim.Adam(parameters, lr=LR)
    for _ in range(PRETRAIN_STEPS):
        loss = kl(decoder(encoder(inputs)))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        codes = encoder(inputs)
    codebook = torch.nn.Parameter(_kmeans_pp(codes, min(k, len(codes)), generator))
    optimizer = torch.optim.Adam([*parameters, codebook], lr=LR)
    for _ in range(VQ_STEPS):
        codes = encoder(inputs)
        nearest = torch.cdist(codes, codebook).argmin(1)
        chosen = codebook[nearest]
        straight = codes + (chosen - codes).detach()
        loss = (kl(decoder(straight)) + F.mse_loss(chosen, codes.detach())
                + COMMITMENT * F.mse_loss(codes, chosen.detach()))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return _quantised(p, codebook.detach(), decoder, meta)


def _quantised(p: torch.Tensor, codebook: torch.Tensor, decoder: torch.nn.Sequential,
               meta: dict) -> SoftLabels:
    first, last = decoder[0], decoder[2]

    def ints(t: torch.Tensor, step_log2: int) -> torch.Tensor:
        return torch.round(t.detach().double() / 2.0 ** step_log2).to(torch.int32)

    weights = tuple(ints(t, WEIGHT_STEP_LOG2) for t in (first.weight, first.bias, last.weight,
                                                        last.bias))
    book = torch.unique(ints(codebook, CODE_STEP_LOG2), dim=0)
    vqae = VQAELabels(CODE_STEP_LOG2, WEIGHT_STEP_LOG2, book, weights,
                      torch.zeros(len(p), dtype=torch.int64))
    table = vqae.table()
    indices = kl_nearest(p.double(), table.double().clamp_min(math.exp(LOG_FLOOR)).log())
    vqae = VQAELabels(CODE_STEP_LOG2, WEIGHT_STEP_LOG2, book, weights, indices)
    return SoftLabels(table[indices], codec="vqae", payload=vqae, **meta)


def _mlp(inputs: int, hidden: int, outputs: int, generator: torch.Generator
         ) -> torch.nn.Sequential:
    """Linear, ReLU, Linear, initialised from `generator` (uniform, torch's default scale)."""
    net = torch.nn.Sequential(torch.nn.Linear(inputs, hidden), torch.nn.ReLU(),
                              torch.nn.Linear(hidden, outputs))
    with torch.no_grad():
        for layer in (net[0], net[2]):
            bound = 1 / math.sqrt(layer.in_features)
            for t in (layer.weight, layer.bias):
                t.copy_(torch.rand(t.shape, generator=generator) * 2 * bound - bound)
    return net


def _kmeans_pp(x: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
    """k-means++ seeds in Euclidean space (the codebook's start)."""
    picks = [int(torch.randint(len(x), (1,), generator=generator))]
    nearest = ((x - x[picks[0]]) ** 2).sum(1)
    while len(picks) < k and float(nearest.sum()) > 0:
        picks.append(int(torch.multinomial(nearest / nearest.sum(), 1, generator=generator)))
        nearest = torch.minimum(nearest, ((x - x[picks[-1]]) ** 2).sum(1))
    return x[picks].clone()
