"""Range coding with constriction's quantised Laplace, and the ideal bits of what it codes.

The estimate mirrors the coder: the Laplace bin mass over [x - 1/2, x + 1/2] with the tails beyond
the support folded into its edge symbols, computed on the side of the mean where it does not
cancel. The file then costs the estimate plus at most one 32-bit word and a tiny fixed-point loss.
"""

from __future__ import annotations

import constriction
import numpy as np

from ddcodec.coding.bytesio import FormatError


def ideal_bits(x: np.ndarray, mu: np.ndarray, b: np.ndarray, lo, hi) -> float:
    """Bits of symbols x under quantised Laplaces (mu, b) on [lo, hi]; lo and hi are integers
    or per-symbol arrays."""
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


def fixed_laplace(m: int, b: float):
    """Zero-mean quantised Laplace on [-m, m]; parameters checked before constriction sees them."""
    if not (0 < m <= 1 << 20 and np.isfinite(b) and b > 0):
        raise ValueError(f"Laplace parameters out of the coder's range (M={m}, b={b})")
    return constriction.stream.model.QuantizedLaplace(-m, m, 0.0, b)


def categorical(probabilities: np.ndarray):
    """A fixed categorical model over 0..len-1 (constriction quantises the probabilities
    deterministically and keeps every positive one positive)."""
    p = np.asarray(probabilities, dtype=np.float64)
    if p.ndim != 1 or not len(p) or not np.isfinite(p).all() or (p < 0).any() or p.sum() <= 0:
        raise ValueError("categorical probabilities must be finite, >= 0 and not all zero")
    return constriction.stream.model.Categorical(p, perfect=False)


class Encoder:
    """constriction's range encoder, with every call guarded: bad parameters and the coder's
    panics (BaseException in pyo3) become one ValueError naming what was being coded."""

    def __init__(self, what: str):
        self.what, self._coder = what, constriction.stream.queue.RangeEncoder()

    def encode(self, symbols: np.ndarray, model, *params) -> None:
        _guard(lambda: self._coder.encode(symbols, model, *params),
               lambda exc: ValueError(f"the range coder refused the {self.what} "
                                      f"({_reason(exc)})"))

    def to_bytes(self) -> bytes:
        return self._coder.get_compressed().astype("<u4").tobytes()


class Decoder:
    """constriction's range decoder, guarded, that remembers what it decoded so `finish()` can
    prove the stream was consumed exactly: re-encoding the decoded symbols under the same models
    must give the section's bytes, no more and no fewer (a stream that ends early or carries
    trailing words is refused; the coder alone cannot see one spare trailing word)."""

    def __init__(self, data: bytes, what: str):
        if len(data) % 4:
            raise FormatError(f"corrupt {what}: range-coded data is not a whole number of words")
        self.data, self.what, self._calls = bytes(data), what, []
        self._coder = constriction.stream.queue.RangeDecoder(
            np.frombuffer(data, dtype="<u4").astype(np.uint32))

    def decode(self, model, *params) -> np.ndarray:
        """decode(model, count) for a fixed model, decode(family, mu, b) for a family."""
        symbols = guarded(lambda: self._coder.decode(model, *params), self.what)
        symbols = np.asarray(symbols, dtype=np.int32)
        self._calls.append((symbols, model, params if len(params) > 1 else ()))
        return symbols

    def finish(self) -> None:
        again = Encoder(self.what)
        try:
            for symbols, model, params in self._calls:
                again.encode(symbols, model, *params)
        except ValueError:
            raise FormatError(f"corrupt {self.what}: decoded symbols fall outside their "
                              "models") from None
        if again.to_bytes() != self.data:
            raise FormatError(f"corrupt {self.what}: the range-coded stream does not end where "
                              "its data ends")


def guarded(call, what: str):
    """Run a constriction decoder call; its errors (some are panics) become a FormatError."""
    return _guard(call, lambda exc: FormatError(f"corrupt {what}: the range decoder rejected "
                                                "the data"))


def _guard(call, failure):
    """Run a constriction call; any error it raises, panics included (pyo3 raises those as
    BaseException), becomes `failure(exc)`. Ctrl-C and exits pass through."""
    try:
        return call()
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # noqa: BLE001 - pyo3 panics are BaseException
        raise failure(exc) from None


def _reason(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:120] if text else "no reason given"
