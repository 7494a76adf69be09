"""The wavefront order of latent coding, and one code path for both directions."""

import numpy as np
import pytest

from ddcodec.bitstream import entropy
from ddcodec.bitstream.bytesio import FormatError
from ddcodec.bitstream.latent_coding import code_latents, wavefront_stride
from ddcodec.codec.arm import CONTEXT_SIZES, causal_offsets
from test_armint import _quantised_arm


@pytest.mark.parametrize("n_ctx", CONTEXT_SIZES)
def test_wavefront_stride_puts_every_context_in_an_earlier_step(n_ctx):
    offsets = causal_offsets(n_ctx)
    s = wavefront_stride(offsets)
    assert all(dx + s * dy < 0 for dy, dx in offsets)  # strictly earlier
    assert not all(dx + (s - 1) * dy < 0 for dy, dx in offsets)  # and s is the smallest


def test_latents_round_trip_through_the_shared_loop_and_refuse_spare_words():
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
    assert all(np.array_equal(a, b) for a, b in zip(grids, out)) and bits_in == bits_out
    assert abs(8 * len(data) - bits_in) <= 64
    for bad in (data + b"\0\0\0\0", data[:-4]):
        decoder = entropy.Decoder(bad, "latent section")
        with pytest.raises(FormatError):
            code_latents("decode", integer, offsets, shapes, 1, 3, decoder)
            decoder.finish()
