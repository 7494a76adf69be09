"""What a .ddz file can hold: one table of limits, checked by the encoder before it writes and by
the decoder as it reads, so that `encode` never writes a file its own decoder refuses.

Each check raises `LimitError` with one line naming the value and its range; the decoder turns
it into a `FormatError` about the section it was reading ("corrupt label section: ...").
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ddcodec.fixedpoint import MAX_K, WEIGHT_MAX_ABS
from ddcodec.errors import LimitError

# header (docs/FORMAT.md, "Header")
HEADER = {"channels": 64, "side": 8192, "classes": 1_000_000, "per_class": 10_000_000,
          "levels": 16, "hidden": 16, "k": MAX_K, "meta": 64, "text": 4096, "meta_key": 256,
          "decoder_name": 64}
FLOAT_MAGNITUDE = 1e6  # |mean| and std, and the gain: beyond any normalisation in use


@dataclass(frozen=True)
class LabelLimits:
    """The labels section's ranges (docs/FORMAT.md, "Soft labels")."""

    step: int = 16  # VQ and VQAE step exponents lie in [-step, step]
    codebook: int = 1 << 16  # VQ / VQAE entries
    code_dim: int = 256  # VQAE code width d_c
    hidden: int = 4096  # VQAE hidden width d_h
    decoder: int = 1 << 22  # VQAE d_h x (d_c + K)
    topk: int = 255  # kept classes per row (one byte)
    bits: tuple[int, int] = (1, 16)  # top-k value bits
    epochs: int = 10_000  # per-epoch rows: E x N
    values: int = 1 << 26  # rows x classes a file may decode to
    strategy: int = 64  # bytes of the views' DSA strategy
    seed: int = (1 << 63) - 1  # views' seed
    integer: int = WEIGHT_MAX_ABS  # codebook and decoder integers (the weights coder's range)


LABELS = LabelLimits()


def within(name: str, value, low, high) -> None:
    """Refuse `value` outside [low, high] (integers compared exactly, as Python ints)."""
    if not low <= value <= high:
        raise LimitError(f"{name} {value} is outside [{low:,}, {high:,}]")


def integer_range(name: str, values: np.ndarray, bound: int = WEIGHT_MAX_ABS) -> None:
    """Refuse integer arrays with a value beyond +-bound, or arrays that are not integers (bool
    included). Computed on the array's own dtype: -2^63 has no absolute value in int64."""
    values = np.asarray(values)
    if values.dtype.kind not in "iu":
        raise LimitError(f"{name} must be integers, not {values.dtype}")
    if values.size and (int(values.min()) < -bound or int(values.max()) > bound):
        raise LimitError(f"{name} hold integers beyond +-{bound:,} "
                         f"(found {int(values.min()):,} to {int(values.max()):,})")


def finite_f32(name: str, value: float, low: float = -math.inf, high: float = math.inf,
               positive: bool = False) -> None:
    """Refuse a float the file stores as float32 that is not finite there, or out of range."""
    v = float(np.float32(value)) if math.isfinite(float(value)) else float(value)
    if not math.isfinite(v) or not low <= v <= high or (positive and v <= 0):
        need = "a positive finite number" if positive else "a finite number"
        raise LimitError(f"{name} {value!r} must be {need}"
                         + (f" within [{low:g}, {high:g}]" if math.isfinite(high) else ""))


def label_values(rows: int, classes: int) -> None:
    """The labels section's bound on the rows it decodes to (rows: images x epochs); each rung
    (ddcodec.labels.rungs) bounds its own parameters from LABELS."""
    if rows * classes > LABELS.values:
        raise LimitError(f"soft labels of {rows:,} rows x {classes:,} classes exceed "
                         f"{LABELS.values:,} values")


def label_views(epochs: int, seed: int, strategy: bytes) -> None:
    within("per-epoch label epochs", epochs, 1, LABELS.epochs)
    within("per-epoch views' seed", seed, 0, LABELS.seed)
    within("per-epoch view strategy length", len(strategy), 0, LABELS.strategy)


# A distributional set's scales section: a spread code per (prior, level), log-spaced
CODE_MAX = 255
CODE_UNIT = 128  # the code of sigma = 1 latent step
CODES_PER_OCTAVE = 16
SIGMA_MIN = 2.0 ** ((1 - CODE_UNIT) / CODES_PER_OCTAVE)
SIGMA_MAX = 2.0 ** ((CODE_MAX - CODE_UNIT) / CODES_PER_OCTAVE)
MAX_SAMPLES = 64  # samples per prior and epoch a file may ask for
