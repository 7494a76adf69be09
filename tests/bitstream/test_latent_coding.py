"""The wavefront order of latent coding: the batched encoder writes exactly the stream the
step-by-step decoder reads (its `finish` re-encodes step by step and must find the same
bytes)."""

import numpy as np
import pytest

from ddcodec.coding import entropy
from ddcodec.coding.bytesio import FormatError
from ddcodec.bitstream.latent_coding import code_latents, wavefront_order, wavefront_stride
from ddcodec.codec.arm import CONTEXT_SIZES, causal_offsets
from test_armint import _quantised_arm


@pytest.mark.parametrize("n_ctx", CONTEXT_SIZES)
def test_wavefront_stride_puts_every_context_in_an_earlier_step(n_ctx):
    offsets = causal_offsets(n_ctx)
    s = wavefront_stride(offsets)
    assert all(dx + s * dy < 0 for dy, dx in offsets)  # strictly earlier
    assert not all(dx + (s - 1) * dy < 0 for dy, dx in offsets)  # and s is the smallest


def test_latents_round_trip_in_wavefront_order_and_refuse_spare_words():
    integer, _ = _quantised_arm(5)
    offsets = causal_offsets(8)
    shapes = [(6, 5), (3, 3)]
    rng = np.random.default_rng(0)
    grids = [rng.integers(-3, 4, (1, 3, h, w)).astype(np.int64) for h, w in shapes]
    coder = entropy.Encoder("latents")
    _, bits_in = code_latents("encode", integer, offsets, shapes, 1, 3, coder, grids)
    data = coder.to_bytes()
    decoder = entropy.Decoder(data, "latent section")
    out, bits_out = code_latents("decode", integer, offsets, shapes, 1, 3, decoder)
    decoder.finish()
    assert all(np.array_equal(a, b) for a, b in zip(grids, out))
    assert bits_in == pytest.approx(bits_out, rel=1e-12)  # summed in another order
    assert abs(8 * len(data) - bits_in) <= 64
    for bad in (data + b"\0\0\0\0", data[:-4]):
        decoder = entropy.Decoder(bad, "latent section")
        with pytest.raises(FormatError):
            code_latents("decode", integer, offsets, shapes, 1, 3, decoder)
            decoder.finish()


def test_the_batched_encoder_writes_the_step_by_step_stream_in_small_chunks(monkeypatch):
    """Chunks end on whole steps: a tiny chunk size (many ARM and coder calls) gives the very
    bytes of one call."""
    from ddcodec.bitstream import latent_coding

    integer, _ = _quantised_arm(5)
    offsets = causal_offsets(8)
    shapes = [(9, 7), (4, 4), (1, 1)]
    rng = np.random.default_rng(1)
    grids = [rng.integers(-5, 5, (2, 3, h, w)).astype(np.int64) for h, w in shapes]

    def encoded() -> bytes:
        coder = entropy.Encoder("latents")
        code_latents("encode", _two(integer), offsets, shapes, 2, 3, coder, grids)
        return coder.to_bytes()

    whole = encoded()
    monkeypatch.setattr(latent_coding, "ENCODE_CHUNK", 7)
    assert encoded() == whole
    decoder = entropy.Decoder(whole, "latent section")
    out, _ = code_latents("decode", _two(integer), offsets, shapes, 2, 3, decoder)
    decoder.finish()
    assert all(np.array_equal(a, b) for a, b in zip(grids, out))
    ys, xs, steps = wavefront_order(3, 4, 2)
    assert list(steps) == sorted(steps) and list(zip(ys, xs))[:3] == [(0, 0), (0, 1), (0, 2)]


def _two(arm):
    """The same integer ARM for two decoders."""
    from dataclasses import fields, is_dataclass, replace

    if is_dataclass(arm):
        stacked = {f.name: _stack2(getattr(arm, f.name)) for f in fields(arm)
                   if isinstance(getattr(arm, f.name), (np.ndarray, list))}
        return replace(arm, **stacked)
    raise TypeError("expected a dataclass ARM")


def _stack2(value):
    if isinstance(value, np.ndarray):
        return np.concatenate([value, value])
    return [np.concatenate([v, v]) for v in value]

