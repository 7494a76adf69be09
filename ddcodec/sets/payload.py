"""The latent payload: every integer a latent set's file needs, as typed, frozen values.

One type goes from training (phase 3 builds it) to the set file (`to_dict`/`from_dict`, plain
tensors that load with weights_only=True) to the bitstream (which codes `latent_grids()` and
`weight_groups()`) and back. The layout is fixed end to end: per decoder group, per level, a
tensor images x channels x h x w of int16 latents; the bitstream sees the same values as
G x (images x channels) x h x w.

`from_dict` validates everything against the architecture before anything is coded, and names
the field that is wrong, so a damaged set file gives one line, never a KeyError or a coder panic.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from ddcodec.fixedpoint import STEP_RANGE, WEIGHT_MAX_ABS
from ddcodec.codec.latents import LatentLayout
from ddcodec.codec.model import KINDS, MODULES, CodecConfig, module_shapes
from ddcodec.codec.weights import QuantizedGroup
from ddcodec.sets.distributional import Scales
from ddcodec.errors import DDCodecError

PAYLOAD_VERSION = 2  # 1: the untyped dict of ddcodec 0.1, same fields; still read
BIT_PARTS = ("latents", "arm", "synthesis", "upsampler", "labels", "scales")


class PayloadError(DDCodecError):
    """A latent payload that does not fit its own architecture; the message names the field."""


def _need(ok: bool, where: str, what: str) -> None:
    if not ok:
        raise PayloadError(f"bad latent payload: {where} {what}")


INTEGER_DTYPES = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)


def is_integer_tensor(t) -> bool:
    """A tensor of integers proper: not float, complex or bool."""
    return isinstance(t, torch.Tensor) and t.dtype in INTEGER_DTYPES


def _get(raw, key: str, where: str):
    _need(isinstance(raw, dict), where, "must be a dict")
    _need(key in raw, f"{where}.{key}", "is missing")
    return raw[key]


def group_from_dict(raw, where: str) -> QuantizedGroup:
    """A QuantizedGroup from its set-file dict, every field checked."""
    names, shapes = _get(raw, "names", where), _get(raw, "shapes", where)
    q, step = _get(raw, "q", where), _get(raw, "step_log2", where)
    _need(is_integer_tensor(q) and q.ndim == 1, f"{where}.q", "must be a 1-D integer tensor")
    _need(isinstance(step, int) and STEP_RANGE[0] <= step <= STEP_RANGE[1],
          f"{where}.step_log2", f"must be an integer in {list(STEP_RANGE)}")
    # min and max, not abs: -2^63 has no absolute value in int64 (it stayed negative)
    _need(q.numel() == 0 or (int(q.min()) >= -WEIGHT_MAX_ABS
                             and int(q.max()) <= WEIGHT_MAX_ABS), f"{where}.q",
          f"holds integers beyond +-{WEIGHT_MAX_ABS}")
    try:
        names = tuple(str(n) for n in names)
    except TypeError:
        raise PayloadError(f"bad latent payload: {where}.names must be a list") from None
    try:
        shapes = tuple(tuple(int(d) for d in s) for s in shapes)
    except (TypeError, ValueError):
        raise PayloadError(f"bad latent payload: {where}.shapes must be lists of "
                           "integers") from None
    return QuantizedGroup(names, shapes, q.to(torch.int32), step)


@dataclass(frozen=True)
class DecoderWeights:
    """One decoder's quantised weights: per module (arm, synthesis, upsampler), per kind."""

    modules: dict[str, dict[str, QuantizedGroup]]

    def in_order(self) -> list[tuple[str, str, QuantizedGroup]]:
        """(module, kind, group) in the canonical order the bitstream codes them."""
        return [(m, k, self.modules[m][k]) for m in MODULES for k in KINDS
                if k in self.modules[m]]

    def to_dict(self) -> dict:
        return {m: {k: g.to_dict() for k, g in self.modules[m].items()} for m in MODULES}

    @classmethod
    def from_dict(cls, raw, where: str, expected: dict[str, dict[str, tuple]]
                  ) -> "DecoderWeights":
        modules = {}
        for module in MODULES:
            entry = _get(raw, module, where)
            _need(isinstance(entry, dict), f"{where}.{module}", "must be a dict")
            modules[module] = {}
            for kind, shapes in expected[module].items():
                group = group_from_dict(_get(entry, kind, f"{where}.{module}"),
                                        f"{where}.{module}.{kind}")
                _need(group.shapes == tuple(shapes.values()) and
                      group.q.numel() == sum(math.prod(s) for s in shapes.values()),
                      f"{where}.{module}.{kind}", "does not match the architecture")
                modules[module][kind] = group
        return cls(modules)


@dataclass(frozen=True)
class DecoderGroup:
    """Images sharing one decoder: one class, or every class with a shared decoder."""

    classes: tuple[int, ...]
    latents: tuple[torch.Tensor, ...]  # per level: images x channels x h x w, int16
    weights: DecoderWeights

    @property
    def n_images(self) -> int:
        return int(self.latents[0].shape[0])

    def to_dict(self) -> dict:
        return {"classes": list(self.classes), "n_images": self.n_images,
                "latents": [g.to(torch.int16) for g in self.latents], **self.weights.to_dict()}


@dataclass(frozen=True)
class EstimatedBits:
    """The model's bit estimate of each part, before any file exists."""

    latents: float
    arm: float
    synthesis: float
    upsampler: float
    labels: float
    scales: float = 0.0  # a distributional set's spreads (absent before ddcodec 0.2: 0)

    @property
    def weights(self) -> float:
        return self.arm + self.synthesis + self.upsampler

    @property
    def total(self) -> float:
        return sum(getattr(self, p) for p in BIT_PARTS)

    def to_dict(self) -> dict:
        """Every part (scales only for distributional sets, so other sets' records keep their keys)."""
        return {**{p: float(getattr(self, p)) for p in BIT_PARTS
                   if p != "scales" or self.scales}, "total": self.total}

    @classmethod
    def from_dict(cls, raw, where: str = "estimated_bits") -> "EstimatedBits":
        values = {}
        for part in BIT_PARTS:
            if part == "scales" and isinstance(raw, dict) and part not in raw:
                continue
            value = _get(raw, part, where)
            _need(isinstance(value, (int, float)) and math.isfinite(value) and value >= 0,
                  f"{where}.{part}", "must be a finite number >= 0")
            values[part] = float(value)
        return cls(**values)


@dataclass(frozen=True)
class LatentPayload:
    config: CodecConfig
    layout: LatentLayout
    groups: tuple[DecoderGroup, ...]
    estimated_bits: EstimatedBits
    fit_psnr: float | None = None
    extra: dict = field(default_factory=dict)  # free-form, ignored by the codec
    scales: Scales | None = None  # a distributional set's spreads (ddcodec.sets.distributional)

    @property
    def num_images(self) -> int:
        return sum(g.n_images for g in self.groups)

    def latent_grids(self) -> list[np.ndarray]:
        """Per level: G x (images x channels) x h x w int64, the bitstream's layout."""
        grids = []
        for level in range(self.layout.levels):
            stacked = np.stack([g.latents[level].numpy() for g in self.groups])
            grids.append(stacked.reshape(len(self.groups), -1, *stacked.shape[-2:])
                         .astype(np.int64))
        return grids

    def weight_groups(self) -> list[QuantizedGroup]:
        """Every decoder's tensor groups, decoder by decoder, each in canonical order."""
        return [q for g in self.groups for _, _, q in g.weights.in_order()]

    def step_exponents(self) -> list[list[int]]:
        return [[q.step_log2 for _, _, q in g.weights.in_order()] for g in self.groups]

    def to_dict(self) -> dict:
        return {"payload_version": PAYLOAD_VERSION, "config": self.config.to_dict(),
                "layout": self.layout.to_dict(), "groups": [g.to_dict() for g in self.groups],
                "estimated_bits": self.estimated_bits.to_dict(), "fit_psnr": self.fit_psnr,
                **({"scales": self.scales.to_dict()} if self.scales is not None else {}),
                **self.extra}

    @classmethod
    def from_dict(cls, raw, image_shape: tuple[int, int, int], num_classes: int
                  ) -> "LatentPayload":
        """Validate a set file's `codec` entry (version 1 or 2) against the images it decodes."""
        _need(isinstance(raw, dict), "codec", "must be a dict")
        version = raw.get("payload_version", 1)
        _need(version in (1, PAYLOAD_VERSION), "codec.payload_version",
              f"is {version}; this ddcodec reads 1 and {PAYLOAD_VERSION}")
        config_raw, layout_raw = _get(raw, "config", "codec"), _get(raw, "layout", "codec")
        try:
            config = CodecConfig(**config_raw)
        except (TypeError, ValueError) as exc:
            raise PayloadError(f"bad latent payload: codec.config: {exc}") from None
        try:
            layout = LatentLayout(**{k: int(v) for k, v in layout_raw.items()})
        except (TypeError, ValueError, AttributeError) as exc:
            raise PayloadError(f"bad latent payload: codec.layout: {exc}") from None
        channels, height, width = image_shape
        _need((layout.height, layout.width) == (height, width), "codec.layout",
              f"is for {layout.height}x{layout.width} images, the set's are {height}x{width}")
        _need(layout.levels == (config.levels or layout.levels) and 1 <= layout.levels <= 16
              and layout.channels_per_level == config.channels_per_level, "codec.layout",
              "disagrees with codec.config")
        groups_raw = _get(raw, "groups", "codec")
        _need(isinstance(groups_raw, (list, tuple)) and len(groups_raw) >= 1, "codec.groups",
              "must be a non-empty list")
        expected_groups = 1 if config.shared_decoder else num_classes
        _need(len(groups_raw) == expected_groups, "codec.groups",
              f"has {len(groups_raw)} decoders, the set needs {expected_groups}")
        shapes = module_shapes(config, layout, channels)
        expected = {m: {k: {n: s for n, s in shapes[m].items() if n.endswith("bias") ==
                            (k == "bias")} for k in KINDS} for m in MODULES}
        expected = {m: {k: v for k, v in kinds.items() if v} for m, kinds in expected.items()}
        groups = []
        for g, entry in enumerate(groups_raw):
            where = f"codec.groups[{g}]"
            classes = _get(entry, "classes", where)
            latents = _get(entry, "latents", where)
            _need(isinstance(latents, (list, tuple)) and len(latents) == layout.levels,
                  f"{where}.latents", f"must hold {layout.levels} grids")
            n = None
            for level, ((h, w), grid) in enumerate(zip(layout.grid_sizes(), latents)):
                _need(is_integer_tensor(grid) and grid.ndim == 4 and tuple(grid.shape[1:]) ==
                      (layout.channels_per_level, h, w) and grid.shape[0] >= 1,
                      f"{where}.latents[{level}]",
                      f"must be an integer tensor images x {layout.channels_per_level} x {h} x {w}")
                _need(n is None or grid.shape[0] == n, f"{where}.latents[{level}]",
                      "has another image count than level 0")
                n = int(grid.shape[0])
                _need(int(grid.min()) >= -config.k and int(grid.max()) <= config.k - 1,
                      f"{where}.latents[{level}]", f"leaves [-k, k-1] = [{-config.k}, "
                                                   f"{config.k - 1}]")
            weights = DecoderWeights.from_dict(entry, where, expected)
            owned = tuple(range(num_classes)) if config.shared_decoder else (g,)
            try:
                classes = tuple(int(c) for c in classes)
            except (TypeError, ValueError):
                classes = None
            _need(classes == owned, f"{where}.classes", f"must be {list(owned)}")
            groups.append(DecoderGroup(classes, tuple(t.to(torch.int16) for t in latents),
                                       weights))
        _need(len({g.n_images for g in groups}) == 1, "codec.groups",
              "per-class decoders need equal images per class")
        bits = EstimatedBits.from_dict(_get(raw, "estimated_bits", "codec"),
                                       "codec.estimated_bits")
        fit_psnr = raw.get("fit_psnr")
        _need(fit_psnr is None or isinstance(fit_psnr, (int, float)), "codec.fit_psnr",
              "must be a number")
        scales = None
        if raw.get("scales") is not None:
            try:
                scales = Scales.from_dict(raw["scales"])
                scales.check_against(len(groups), groups[0].n_images, layout.levels)
            except DDCodecError as exc:
                raise PayloadError(f"bad latent payload: codec.scales: {exc}") from None
        known = {"payload_version", "config", "layout", "groups", "estimated_bits", "fit_psnr",
                 "scales"}
        extra = {k: v for k, v in raw.items() if k not in known}
        return cls(config, layout, tuple(groups), bits, fit_psnr, extra, scales)
