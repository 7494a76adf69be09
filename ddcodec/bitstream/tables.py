"""The fixed-point grid of Laplace parameters the range coder uses, identical on every machine.

The integer ARM outputs mu and log b in Q.8 (units of 1/256). mu = q/256 is exact in float64; b
comes from a table of exp(q/256) computed with 40-digit decimal arithmetic and rounded to float32,
never from a platform's exp(). Its SHA-256 is checked when ddcodec loads, so a table that differs
anywhere stops decoding before it can go wrong silently.
"""

from __future__ import annotations

import decimal
import hashlib

import numpy as np

from ddcodec.fixedpoint import FRACTION_BITS, LOG_SCALE_MAX_Q, LOG_SCALE_MIN_Q, ONE

__all__ = ["FRACTION_BITS", "ONE", "SCALE_TABLE", "scales", "table_digest"]
SCALE_TABLE_SHA256 = "82860de134f8414f3a16cb0c4489bc94a51a11f9315e68c30c4356f36b6d5282"


def _build_scale_table() -> np.ndarray:
    context = decimal.Context(prec=40)
    values = [float(context.exp(decimal.Decimal(q) / ONE))
              for q in range(LOG_SCALE_MIN_Q, LOG_SCALE_MAX_Q + 1)]
    return np.asarray(values, dtype=np.float32)


SCALE_TABLE = _build_scale_table()
SCALE_TABLE.setflags(write=False)


def table_digest() -> str:
    return hashlib.sha256(SCALE_TABLE.tobytes()).hexdigest()


if table_digest() != SCALE_TABLE_SHA256:  # pragma: no cover - would mean a broken platform
    raise ImportError("ddcodec's Laplace scale table does not match its reference hash on this "
                      "machine; .ddz files cannot be coded here safely")


def scales(log_scale_q: np.ndarray) -> np.ndarray:
    """Laplace scales (float64 holding float32 values) for Q.8 log-scales already clamped."""
    return SCALE_TABLE[log_scale_q - LOG_SCALE_MIN_Q].astype(np.float64)
