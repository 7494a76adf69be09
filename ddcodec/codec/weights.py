"""Post-training quantisation of decoder weights (phase 3) and their bit cost.

Each decoder's tensor groups (a module's weights, its biases) become integers q with one
power-of-two step 2^s, chosen by search as in Cool-chic: for the upsampler and synthesis, the
pair of steps with the fewest bits whose decoded images stay within an MSE threshold of the
unquantised decoder's; for the ARM, which never changes the images, the pair that minimises its
own bits plus the latents' bits. Bits are the ideal code length under one zero-mean Laplace per
group (how the bitstream codes them). ARM steps stay within 2^-8 (weights) and 2^-16 (biases), so
an exact fixed-point ARM can use them. All decoders of a bank are searched at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn as nn

from ddcodec.fixedpoint import (
    ARM_BIAS_STEP_MIN,
    ARM_WEIGHT_STEP_MIN,
    WEIGHT_MAX_ABS,
)
from ddcodec.codec.laplace import SCALE_BITS, zero_mean_laplace_bits  # noqa: F401 - re-exported

STEP_RANGES: dict[str, tuple[range, range | None]] = {
    "arm": (range(ARM_WEIGHT_STEP_MIN, 1), range(ARM_BIAS_STEP_MIN, 1)),
    "synthesis": (range(-15, 1), range(-15, 1)),
    "upsampler": (range(-15, 1), None),  # no bias
}


@dataclass(frozen=True)
class QuantizedGroup:
    """One decoder's integers of one tensor group and their step (value = q * 2^step_log2)."""

    names: tuple[str, ...]
    shapes: tuple[tuple[int, ...], ...]
    q: torch.Tensor  # int32, the group's tensors flattened in order
    step_log2: int

    @property
    def bits(self) -> float:
        return float(zero_mean_laplace_bits(self.q[None])[0])

    def to_dict(self) -> dict:
        return {"names": list(self.names), "shapes": [list(s) for s in self.shapes],
                "q": self.q.to(torch.int32), "step_log2": int(self.step_log2)}


def tensor_kinds(module: nn.ParameterDict) -> dict[str, list[str]]:
    """Parameter names of the 'weight' and 'bias' groups, in a stable order."""
    kinds: dict[str, list[str]] = {"weight": [], "bias": []}
    for name in module.keys():
        kinds["bias" if name.endswith("bias") else "weight"].append(name)
    return {k: v for k, v in kinds.items() if v}


def _flat(module: nn.ParameterDict, names: list[str]) -> torch.Tensor:
    """The group's values per decoder, on the CPU (the search's arithmetic stays there)."""
    return torch.cat([module[n].detach().cpu().flatten(1) for n in names], dim=1).double()


@torch.no_grad()
def _load(module: nn.ParameterDict, names: list[str], values: torch.Tensor,
          rows: torch.Tensor | None = None) -> None:
    """Write flat per-decoder values (G x n, or len(rows) x n) into the named parameters."""
    offset = 0
    for name in names:
        p = module[name]
        n = p[0].numel()
        block = values[:, offset:offset + n].reshape(-1, *p.shape[1:]).to(p.device, p.dtype)
        if rows is None:
            p.copy_(block)
        else:
            p[rows.to(p.device)] = block
        offset += n


@torch.no_grad()
def step_pairs(kind: str, has_bias: bool = True) -> list[tuple[int, int | None]]:
    """Every (weight step, bias step) pair the search tries for a module kind."""
    weight_steps, bias_steps = STEP_RANGES[kind]
    return [(ws, bs) for ws in weight_steps
            for bs in (bias_steps if has_bias and bias_steps else [None])]


def search_module(module: nn.ParameterDict, kind: str,
                  cost: Callable[[], tuple[torch.Tensor, torch.Tensor]],
                  on_pair: Callable[[int, int], None] | None = None,
                  other_bits_fixed: bool = False) -> list[dict[str, QuantizedGroup]]:
    """Per decoder, the accepted (weight step, bias step) pair of least total bits (the finest
    valid pair if none is accepted; among equal totals, the earliest in `step_pairs` order).

    `cost()` evaluates the module as currently loaded and returns, per decoder, whether it is
    acceptable and the bits of everything else that depends on the choice. Decoders are
    independent, so each row of the module may hold a different pair during one call.
    `on_pair(i, n)` is told after each evaluation (the search can take minutes on large sets).

    `other_bits_fixed`: the other bits do not depend on the pair (synthesis, upsampler: 0), so a
    pair's total is its own weight bits, known without evaluating. Each decoder then tries its
    valid pairs cheapest first and stops at the first accepted: the same answer as trying all,
    in as many evaluations as the deepest decoder needs instead of one per pair (phase 3 on
    large sets was dominated by synthesising every image for every pair).
    """
    kinds = tensor_kinds(module)
    flats = {k: _flat(module, names) for k, names in kinds.items()}
    groups = next(iter(flats.values())).shape[0]
    pairs = step_pairs(kind, "bias" in kinds)
    if other_bits_fixed:
        chosen = _cheapest_accepted(module, kinds, flats, pairs, cost, on_pair)
    else:
        chosen = _every_pair(module, kinds, flats, pairs, cost, on_pair)
    result = []
    for g in range(groups):
        pair = chosen[g]
        if pair is None:
            raise RuntimeError(f"no quantisation step keeps the {kind} weights within range")
        steps = dict(zip(("weight", "bias"), pair))
        entry = {}
        for k, names in kinds.items():
            q = torch.round(flats[k][g:g + 1] / 2.0 ** steps[k])
            _load(module, names, q * 2.0 ** steps[k], rows=torch.tensor([g]))
            entry[k] = QuantizedGroup(tuple(names), tuple(tuple(module[n].shape[1:])
                                                          for n in names),
                                      q[0].to(torch.int32), steps[k])
        result.append(entry)
    return result


def _quantized(flats: dict[str, torch.Tensor], pair: tuple) -> dict[str, torch.Tensor]:
    steps = dict(zip(("weight", "bias"), pair))
    return {k: torch.round(flat / 2.0 ** steps[k]) for k, flat in flats.items()}


def _load_pair(module: nn.ParameterDict, kinds: dict[str, list[str]],
               ints: dict[str, torch.Tensor], pair: tuple,
               rows: torch.Tensor | None = None) -> None:
    steps = dict(zip(("weight", "bias"), pair))
    for k in kinds:
        _load(module, kinds[k], ints[k] * 2.0 ** steps[k], rows=rows)


def _pair_bits(ints: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Per decoder: whether the integers fit the coder's range, and their bits."""
    valid = torch.stack([q.abs().amax(1) <= WEIGHT_MAX_ABS for q in ints.values()]).all(0)
    return valid, sum(zero_mean_laplace_bits(q) for q in ints.values())


def _every_pair(module, kinds, flats, pairs, cost, on_pair) -> list[tuple | None]:
    """Every pair for all decoders at once (the other bits change with the pair)."""
    groups = next(iter(flats.values())).shape[0]
    best = torch.full((groups,), float("inf"), dtype=torch.float64)
    chosen: list[tuple | None] = [None] * groups
    finest: list[tuple | None] = [None] * groups
    for number, pair in enumerate(pairs, start=1):
        ints = _quantized(flats, pair)
        valid, weight_bits = _pair_bits(ints)
        _load_pair(module, kinds, ints, pair)
        ok, other_bits = cost()
        ok = ok.cpu()
        total = other_bits.double().cpu() + weight_bits
        for g in range(groups):
            if not valid[g]:
                continue
            finest[g] = finest[g] or pair
            if bool(ok[g]) and total[g] < best[g]:
                best[g], chosen[g] = total[g], pair
        if on_pair is not None:
            on_pair(number, len(pairs))
    return [c or f for c, f in zip(chosen, finest)]


def _cheapest_accepted(module, kinds, flats, pairs, cost, on_pair) -> list[tuple | None]:
    """Each decoder's valid pairs in order of (bits, position); evaluate every decoder's next
    candidate in one call until each has an accepted pair or none left (then its finest)."""
    groups = next(iter(flats.values())).shape[0]
    bits = torch.empty(len(pairs), groups, dtype=torch.float64)
    valid = torch.empty(len(pairs), groups, dtype=torch.bool)
    for i, pair in enumerate(pairs):
        valid[i], bits[i] = _pair_bits(_quantized(flats, pair))
    queues = [[i for _, i in sorted((float(bits[i, g]), i) for i in range(len(pairs))
                                    if valid[i, g])] for g in range(groups)]
    finest = [min(queue) if queue else None for queue in queues]
    chosen: list[int | None] = [None] * groups
    position = [0] * groups
    number = 0
    while True:
        trying = {g: queues[g][position[g]] for g in range(groups)
                  if chosen[g] is None and position[g] < len(queues[g])}
        if not trying:
            break
        for g, i in trying.items():
            _load_pair(module, kinds, _quantized({k: f[g:g + 1] for k, f in flats.items()},
                                                 pairs[i]), pairs[i], rows=torch.tensor([g]))
        ok = cost()[0].cpu()
        for g, i in trying.items():
            if bool(ok[g]):
                chosen[g] = i
            else:
                position[g] += 1
        number += 1
        if on_pair is not None:
            on_pair(number, len(pairs))
    return [pairs[c] if c is not None else (pairs[f] if f is not None else None)
            for c, f in zip(chosen, finest)]
