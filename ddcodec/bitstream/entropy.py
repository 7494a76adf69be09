"""Range coding with constriction's quantised Laplace, and the ideal bits of what it codes.

The estimate mirrors the coder: the Laplace bin mass over [x - 1/2, x + 1/2] with the tails beyond
the support folded into its edge symbols, computed on the side of the mean where it does not
cancel. The file then costs the estimate plus at most one 32-bit word and a tiny fixed-point loss.
"""

from __future__ import annotations

import constriction
import numpy as np

from ddcodec.bitstream.bytesio import FormatError


def ideal_bits(x: np.ndarray, mu: np.ndarray, b: np.ndarray, lo: int, hi: int) -> float:
    with np.errstate(over="ignore"):  # np.where evaluates the branch it then discards
        return _ideal_bits(*(np.asarray(a, dtype=np.float64) for a in (x, mu, b)), lo, hi)


def _ideal_bits(x: np.ndarray, mu: np.ndarray, b: np.ndarray, lo: int, hi: int) -> float:
    left_edge = np.exp(np.minimum(x - 0.5 - mu, 0) / b) * 0.5  # CDF(x - 1/2) when below mu
    right_edge = np.exp(-np.maximum(x + 0.5 - mu, 0) / b) * 0.5  # 1 - CDF(x + 1/2) above mu
    cdf_low = np.where(x <= lo, 0.0, np.where(x - 0.5 <= mu, left_edge,
                                              1 - 0.5 * np.exp(-(x - 0.5 - mu) / b)))
    sf_high = np.where(x >= hi, 0.0, np.where(x + 0.5 >= mu, right_edge,
                                              1 - 0.5 * np.exp((x + 0.5 - mu) / b)))
    p = 1.0 - cdf_low - sf_high
    # far in a tail, 1 - a - b cancels: use the one-sided difference there
    below = (x + 0.5 <= mu) & (x > lo)
    above = (x - 0.5 >= mu) & (x < hi)
    p = np.where(below, 0.5 * np.exp((x + 0.5 - mu) / b) - cdf_low, p)
    p = np.where(above, 0.5 * np.exp(-(x - 0.5 - mu) / b) - sf_high, p)
    return float(-np.log2(np.maximum(p, 2.0 ** -24)).sum())


def laplace_family(k: int):
    return constriction.stream.model.QuantizedLaplace(-k, k - 1)


def encoder():
    return constriction.stream.queue.RangeEncoder()


def words_to_bytes(coder) -> bytes:
    return coder.get_compressed().astype("<u4").tobytes()


def decoder(data: bytes, what: str):
    if len(data) % 4:
        raise FormatError(f"corrupt {what}: range-coded data is not a whole number of words")
    return constriction.stream.queue.RangeDecoder(
        np.frombuffer(data, dtype="<u4").astype(np.uint32))


def guarded(call, what: str):
    """Run a constriction call; turn its errors (some are BaseException panics) into ours."""
    try:
        return call()
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # noqa: BLE001 - pyo3 panics are BaseException
        raise FormatError(f"corrupt {what}: the range decoder rejected the data "
                          f"({type(exc).__name__})") from None
