"""Float pixel sets are coded exactly, bit for bit, in float16 where that holds them, and a
damaged float section is refused."""

import numpy as np
import pytest
import torch

from ddcodec.coding.bytesio import FormatError
from ddcodec.bitstream.codec import decode_bytes, encode_set, plan_pixels
from ddcodec.bitstream.float_coding import (
    decode_float_pixels,
    encode_float_pixels,
    narrowest_width,
)
from ddcodec.bitstream.format import Kind
from helpers import assemble, float_set, split


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    a, b = np.ascontiguousarray(a), np.ascontiguousarray(b)
    return a.dtype == b.dtype and np.array_equal(a.view(np.uint8), b.view(np.uint8))


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_awkward_values_come_back_bit_for_bit(dtype):
    rng = np.random.default_rng(0)
    values = rng.normal(0, 1.5, (4, 3, 9, 7)).astype(dtype)
    finfo = np.finfo(dtype)
    values.flat[:8] = [0.0, -0.0, finfo.tiny, -finfo.tiny, finfo.max, -finfo.max,
                       finfo.smallest_subnormal, -finfo.eps]
    width = 16 if dtype == np.float16 else 32
    data = encode_float_pixels(values, width)
    back, got_width = decode_float_pixels(data, values.shape)
    assert got_width == width and same_bits(back, values)


def test_smooth_values_cost_less_than_their_width():
    x = np.linspace(-2, 2, 3 * 32 * 32, dtype=np.float32).reshape(1, 3, 32, 32)
    assert 8 * len(encode_float_pixels(x, 32)) < 0.75 * 32 * x.size


def test_the_narrowest_exact_width_is_chosen():
    halves = np.array([0.5, -1.25, 3.0], dtype=np.float32)
    assert narrowest_width(halves) == 16
    assert narrowest_width(halves + np.float32(1e-4)) == 32
    assert narrowest_width(np.array([1e6], dtype=np.float32)) == 32  # beyond float16's range


def test_a_float_set_round_trips_exactly_through_a_file():
    distilled = float_set()
    plan = plan_pixels(distilled)
    assert plan.kind == Kind.FLOAT_PIXELS and plan.values.dtype == np.float32
    data, _ = encode_set(distilled)
    decoded = decode_bytes(data)
    assert decoded.header.kind == Kind.FLOAT_PIXELS
    back = decoded.to_set().images
    assert torch.equal(back.view(torch.int32), distilled.images.view(torch.int32))
    assert float((back - distilled.images).abs().max()) == 0.0


def test_sets_on_the_8_bit_grid_stay_8_bit_pixels():
    distilled = float_set()
    on_grid = distilled.normalization.normalize(
        distilled.normalization.denormalize(distilled.images).mul(255).round().clamp(0, 255)
        .to(torch.uint8))
    plan = plan_pixels(type(distilled)(on_grid, distilled.labels, distilled.class_names,
                                       distilled.normalization))
    assert plan.kind == Kind.PIXELS and plan.meta == {}


def test_declared_8_bit_reports_its_error():
    distilled = float_set()
    plan = plan_pixels(distilled, "8bit")
    assert plan.kind == Kind.PIXELS and plan.meta["pixels"] == "8bit"
    max_error, mean_error = float(plan.meta["max_error"]), float(plan.meta["mean_error"])
    assert 0 < mean_error <= max_error < 0.05  # the wobble plus at most half an 8-bit step
    assert 40 < float(plan.meta["psnr_db"]) < 80
    decoded = decode_bytes(encode_set(distilled, pixels="8bit")[0])
    error = (decoded.to_set().images - distilled.images).abs()
    assert float(error.max()) == pytest.approx(max_error, rel=1e-5)
    with pytest.raises(ValueError, match="unknown pixel coding"):
        plan_pixels(distilled, "jpeg")


@pytest.mark.parametrize("damage", ["truncate raw bits", "extra byte", "bad width"])
def test_a_damaged_float_section_is_refused(damage):
    data, _ = encode_set(float_set())
    header, head, sections, crc = split(data)
    (section,) = sections
    body = section.data
    if damage == "truncate raw bits":
        body = body[:-1]
    elif damage == "extra byte":
        body = body + b"\x00"
    else:
        body = bytes([24]) + body[1:]
    with pytest.raises(FormatError, match="float pixel"):
        decode_bytes(assemble(head, [(section.tag, body)], crc))


def test_version_1_cannot_hold_float_pixels():
    with pytest.raises(ValueError, match="version 1 cannot hold float pixels"):
        encode_set(float_set(), version=1)
