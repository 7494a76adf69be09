"""Differentiable Siamese Augmentation (DSA), with the reference code's parameters.

Each call picks one group of the strategy at random (`color` = brightness, saturation, contrast
in turn) and applies it to the whole batch, differentiably in the pixels. Randomness comes only
from an explicit `torch.Generator` on the CPU, so a fixed seed gives the same augmentation on any
device. `draw` and `apply` are separate so distillation can draw once and apply the same
parameters to a real and a synthetic batch ("siamese"; `shared=True` draws one parameter set for
the whole batch), while evaluation draws per sample.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from ddcodec.names import DEFAULT_STRATEGY
from ddcodec import seeds
GROUPS = ("color", "crop", "cutout", "flip", "scale", "rotate")
UNIFORMS_PER_VIEW = 4  # the group, then up to three numbers (color's)


@dataclass(frozen=True)
class DSAParams:
    strategy: str = DEFAULT_STRATEGY
    prob_flip: float = 0.5
    ratio_scale: float = 1.2
    ratio_rotate: float = 15.0  # degrees
    ratio_crop_pad: float = 0.125
    ratio_cutout: float = 0.5
    brightness: float = 1.0
    saturation: float = 2.0
    contrast: float = 0.5

    def groups(self) -> tuple[str, ...]:
        names = tuple(g for g in self.strategy.split("_") if g)
        unknown = [g for g in names if g not in GROUPS]
        if unknown or not names:
            raise ValueError(f"unknown DSA strategy {self.strategy!r}; groups are {GROUPS}")
        return names


@dataclass
class AugPlan:
    """One drawn augmentation: the group and its random numbers (length 1 when shared)."""

    group: str
    values: dict[str, torch.Tensor] = field(default_factory=dict)


class DSA:
    def __init__(self, params: DSAParams | None = None):
        self.params = params or DSAParams()
        self.groups = self.params.groups()

    def __call__(self, x: torch.Tensor, generator: torch.Generator,
                 shared: bool = False) -> torch.Tensor:
        return self.apply(x, self.draw(x.shape, generator, shared))

    def draw(self, shape, generator: torch.Generator, shared: bool = False) -> AugPlan:
        n, _, h, w = shape
        m = 1 if shared else n
        p = self.params
        pick = int(torch.randint(len(self.groups), (1,), generator=generator))
        group = self.groups[pick]

        def uniform(low: float, high: float) -> torch.Tensor:
            return torch.rand(m, generator=generator) * (high - low) + low

        def integers(low: int, high: int) -> torch.Tensor:  # high exclusive
            return torch.randint(low, high, (m,), generator=generator)

        if group == "color":
            values = {"brightness": uniform(-0.5, 0.5) * p.brightness,
                      "saturation": uniform(0.0, 1.0) * p.saturation,
                      "contrast": uniform(0.0, 1.0) + p.contrast}
        elif group == "crop":
            sh, sw = int(h * p.ratio_crop_pad + 0.5), int(w * p.ratio_crop_pad + 0.5)
            values = {"dy": integers(-sh, sh + 1), "dx": integers(-sw, sw + 1)}
        elif group == "cutout":
            ch, cw = int(h * p.ratio_cutout + 0.5), int(w * p.ratio_cutout + 0.5)
            values = {"cy": integers(0, h + (1 - ch % 2)), "cx": integers(0, w + (1 - cw % 2)),
                      "size": torch.tensor([ch, cw])}
        elif group == "flip":
            values = {"flip": torch.rand(m, generator=generator) < p.prob_flip}
        elif group == "scale":
            values = {"sx": uniform(1 / p.ratio_scale, p.ratio_scale),
                      "sy": uniform(1 / p.ratio_scale, p.ratio_scale)}
        else:  # rotate
            values = {"angle": uniform(-1.0, 1.0) * p.ratio_rotate * math.pi / 180}
        return AugPlan(group, values)

    def plans_from_uniforms(self, shape, uniforms: torch.Tensor
                            ) -> list[tuple[torch.Tensor, AugPlan]]:
        """Per-sample transforms from given uniforms in [0, 1) (N x UNIFORMS_PER_VIEW: the
        group, then its numbers), with `draw`'s distributions: (sample indices, plan) for each
        group drawn. Counter-based uniforms make a sample's view a function of its key alone,
        which per-epoch soft labels need (ddcodec.views)."""
        _, _, h, w = shape
        p = self.params
        u = uniforms.double()
        picks = (u[:, 0] * len(self.groups)).long().clamp(max=len(self.groups) - 1)
        out = []
        for index, group in enumerate(self.groups):
            chosen = torch.nonzero(picks == index).flatten()
            if len(chosen) == 0:
                continue
            a, b, c = u[chosen, 1], u[chosen, 2], u[chosen, 3]

            def integers(v: torch.Tensor, low: int, high: int) -> torch.Tensor:
                return (low + (v * (high - low)).floor().long()).clamp(max=high - 1)

            if group == "color":
                values = {"brightness": ((a - 0.5) * p.brightness).float(),
                          "saturation": (b * p.saturation).float(),
                          "contrast": (c + p.contrast).float()}
            elif group == "crop":
                sh, sw = int(h * p.ratio_crop_pad + 0.5), int(w * p.ratio_crop_pad + 0.5)
                values = {"dy": integers(a, -sh, sh + 1), "dx": integers(b, -sw, sw + 1)}
            elif group == "cutout":
                ch, cw = int(h * p.ratio_cutout + 0.5), int(w * p.ratio_cutout + 0.5)
                values = {"cy": integers(a, 0, h + (1 - ch % 2)),
                          "cx": integers(b, 0, w + (1 - cw % 2)), "size": torch.tensor([ch, cw])}
            elif group == "flip":
                values = {"flip": a < p.prob_flip}
            elif group == "scale":
                low, high = 1 / p.ratio_scale, p.ratio_scale
                values = {"sx": (a * (high - low) + low).float(),
                          "sy": (b * (high - low) + low).float()}
            else:  # rotate
                values = {"angle": ((a * 2 - 1) * p.ratio_rotate * math.pi / 180).float()}
            out.append((chosen, AugPlan(group, values)))
        return out

    def apply_each(self, x: torch.Tensor, uniforms: torch.Tensor) -> torch.Tensor:
        """Each sample its own transform, from its row of uniforms."""
        out = x.clone()
        for chosen, plan in self.plans_from_uniforms(x.shape, uniforms):
            index = chosen.to(x.device)
            out[index] = self.apply(x[index], plan)
        return out

    def apply(self, x: torch.Tensor, plan: AugPlan) -> torch.Tensor:
        n = x.shape[0]
        v = {k: (t.to(x.device) if k == "size" else _per_sample(t, n).to(x.device))
             for k, t in plan.values.items()}
        if plan.group == "color":
            x = x + v["brightness"].view(-1, 1, 1, 1).to(x.dtype)
            mean = x.mean(dim=1, keepdim=True)
            x = (x - mean) * v["saturation"].view(-1, 1, 1, 1).to(x.dtype) + mean
            mean = x.mean(dim=(1, 2, 3), keepdim=True)
            return (x - mean) * v["contrast"].view(-1, 1, 1, 1).to(x.dtype) + mean
        if plan.group == "crop":
            return _translate(x, v["dy"], v["dx"])
        if plan.group == "cutout":
            return _cutout(x, v["cy"], v["cx"], int(v["size"][0]), int(v["size"][1]))
        if plan.group == "flip":
            return torch.where(v["flip"].view(-1, 1, 1, 1), x.flip(3), x)
        if plan.group == "scale":
            zeros = torch.zeros_like(v["sx"])
            theta = torch.stack([torch.stack([v["sx"], zeros, zeros], 1),
                                 torch.stack([zeros, v["sy"], zeros], 1)], 1)
            return _warp(x, theta)
        cos, sin, zeros = torch.cos(v["angle"]), torch.sin(v["angle"]), torch.zeros_like(v["angle"])
        theta = torch.stack([torch.stack([cos, sin, zeros], 1),
                             torch.stack([-sin, cos, zeros], 1)], 1)
        return _warp(x, theta)


def _per_sample(values: torch.Tensor, n: int) -> torch.Tensor:
    return values.expand(n) if values.shape[0] == 1 else values


def _warp(x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=True)
    return F.grid_sample(x, grid, align_corners=True)


def _translate(x: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor) -> torch.Tensor:
    """Shift each image by (dy, dx) pixels, filling what comes in with zeros."""
    n, _, h, w = x.shape
    padded = F.pad(x, (1, 1, 1, 1))
    rows = (torch.arange(h, device=x.device)[None, :] + dy[:, None] + 1).clamp(0, h + 1)
    cols = (torch.arange(w, device=x.device)[None, :] + dx[:, None] + 1).clamp(0, w + 1)
    batch = torch.arange(n, device=x.device)[:, None, None]
    out = padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]]
    return out.permute(0, 3, 1, 2)


def _cutout(x: torch.Tensor, cy: torch.Tensor, cx: torch.Tensor, ch: int, cw: int) -> torch.Tensor:
    """Zero a ch x cw square centred at (cy, cx), clipped at the borders."""
    _, _, h, w = x.shape
    top, left = cy - ch // 2, cx - cw // 2
    rows = torch.arange(h, device=x.device)[None, :]
    cols = torch.arange(w, device=x.device)[None, :]
    in_rows = (rows >= top[:, None]) & (rows < top[:, None] + ch)
    in_cols = (cols >= left[:, None]) & (cols < left[:, None] + cw)
    keep = ~(in_rows[:, :, None] & in_cols[:, None, :])
    return x * keep[:, None].to(x.dtype)


@dataclass(frozen=True)
class LabelViews:
    """The views per-epoch soft labels are made on: view e of image i is DSA (this strategy)
    with uniforms keyed by (seed, e, i) (ddcodec.seeds.counter_uniforms), a function of its key
    alone, so `measure` replays exactly the views the teacher labelled, on any machine."""

    seed: int
    strategy: str

    def __call__(self, images: torch.Tensor, epoch: int, samples) -> torch.Tensor:
        uniforms = seeds.counter_uniforms("label_views", self.seed, epoch,
                                          torch.as_tensor(samples).cpu().numpy(),
                                          UNIFORMS_PER_VIEW)
        return DSA(DSAParams(strategy=self.strategy)).apply_each(images, uniforms)
