"""The decoder's architecture as plain data, free of torch: synthesis presets, the ARM's causal
context, the upsampler's size, parameter shapes, and `CodecConfig`. Configs, the command line and
the bitstream's header reader validate against this without loading torch; the modules that
compute (`arm`, `synthesis`, `upsampling`, `model`) take their shapes from here.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from ddcodec.fixedpoint import MAX_K

MODULES = ("arm", "synthesis", "upsampler")
KINDS = ("weight", "bias")  # the tensor groups of each module, in canonical order
DEFAULT_GAIN = 16.0
DEFAULT_K = 64

# synthesis: hidden widths of the 1x1 layers per preset (the paper's code), then two 3x3 residuals
PRESETS: dict[str, tuple[int, ...]] = {
    "v0-0": (24,), "v0": (40,), "v2": (20, 20, 20), "v1": (40, 20), "v3-2": (160,),
    "v3-4": (240,), "v5-1": (240,), "v3-3": (80, 40), "v5-3": (480,), "v3": (128, 40),
    "v4": (160, 40), "v5": (240, 40), "v6": (320, 40), "v7": (480, 40),
}
RESIDUAL_LAYERS = 2

# ARM: contexts come from a 9x9 window, the positions above or left of the centre
WINDOW = 9
HALF = WINDOW // 2
CONTEXT_SIZES = (8, 16, 24, 32)

UPSAMPLER_TAPS = 8


def preset_widths(name: str) -> tuple[int, ...]:
    if name not in PRESETS:
        raise ValueError(f"unknown decoder preset {name!r}; choose one of {', '.join(PRESETS)}")
    return PRESETS[name]


def synthesis_shapes(in_channels: int, out_channels: int, widths: tuple[int, ...]):
    """Name -> per-decoder shape, in layer order."""
    shapes: dict[str, tuple[int, ...]] = {}
    sizes = (in_channels, *widths, out_channels)
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        shapes[f"pointwise{i}_weight"] = (b, a)
        shapes[f"pointwise{i}_bias"] = (b,)
    for j in range(RESIDUAL_LAYERS):
        shapes[f"residual{j}_weight"] = (out_channels, out_channels, 3, 3)
        shapes[f"residual{j}_bias"] = (out_channels,)
    return shapes


def causal_offsets(n_ctx: int) -> list[tuple[int, int]]:
    """(dy, dx) offsets of the n_ctx nearest causal neighbours (ties by row, then column)."""
    if n_ctx not in CONTEXT_SIZES:
        raise ValueError(f"ARM context must be one of {CONTEXT_SIZES}, not {n_ctx}")
    causal = [(dy, dx) for dy in range(-HALF, 1) for dx in range(-HALF, HALF + 1)
              if dy < 0 or dx < 0]
    causal.sort(key=lambda o: (o[0] ** 2 + o[1] ** 2, o[0], o[1]))
    return causal[:n_ctx]


def arm_shapes(n_ctx: int, hidden: int) -> dict[str, tuple[int, ...]]:
    shapes: dict[str, tuple[int, ...]] = {}
    for i in range(hidden):
        shapes[f"hidden{i}_weight"] = (n_ctx, n_ctx)
        shapes[f"hidden{i}_bias"] = (n_ctx,)
    shapes["out_weight"] = (2, n_ctx)
    shapes["out_bias"] = (2,)
    return shapes


@dataclass(frozen=True)
class CodecConfig:
    decoder: str = "v0"
    arm_context: int = 16
    arm_hidden: int = 2
    levels: int | None = None  # default log2(min(H, W)) + 1
    channels_per_level: int = 1
    gain: float = DEFAULT_GAIN
    k: int = DEFAULT_K
    shared_decoder: bool = False

    def __post_init__(self):
        preset_widths(self.decoder)  # validates the name
        causal_offsets(self.arm_context)  # validates the context size
        if self.arm_hidden < 0 or self.channels_per_level < 1:
            raise ValueError("ARM hidden layers must be >= 0 and channels per level >= 1")
        if not (1 <= self.k <= MAX_K and math.isfinite(self.gain) and self.gain > 0):
            raise ValueError(f"latent range k must be in [1, {MAX_K}] and the gain finite and "
                             f"> 0 (k={self.k}, gain={self.gain})")

    def to_dict(self) -> dict:
        return asdict(self)


def module_shapes(config: CodecConfig, layout, image_channels: int):
    """Per-decoder parameter shapes of each module, in a fixed order (`layout`: a
    LatentLayout)."""
    widths = preset_widths(config.decoder)
    return {
        "arm": arm_shapes(config.arm_context, config.arm_hidden),
        "synthesis": synthesis_shapes(layout.total_channels, image_channels, widths),
        "upsampler": {"kernel_weight": (UPSAMPLER_TAPS, UPSAMPLER_TAPS)},
    }
