"""The integer ARM: exact fixed point, equal to the float ARM up to its rounding, and bounded."""

import numpy as np
import pytest
import torch

from ddcodec.bitstream.armint import IntegerARM
from ddcodec.coding.bytesio import FormatError
from ddcodec.fixedpoint import ONE
from ddcodec.codec import arm


def _quantised_arm(seed: int, n_ctx: int = 8, hidden: int = 2, w_step: int = -6,
                   b_step: int = -10):
    rng = np.random.default_rng(seed)
    shapes = arm.parameter_shapes(n_ctx, hidden)
    weights = [n for n in shapes if n.endswith("weight")]
    biases = [n for n in shapes if n.endswith("bias")]
    wq = rng.integers(-20, 21, sum(int(np.prod(shapes[n])) for n in weights)).astype(np.int32)
    bq = rng.integers(-200, 201, sum(int(np.prod(shapes[n])) for n in biases)).astype(np.int32)
    floats, offset = {}, 0
    for n in weights:
        size = int(np.prod(shapes[n]))
        floats[n] = torch.tensor(wq[offset:offset + size] * 2.0 ** w_step).view(1, *shapes[n])
        offset += size
    offset = 0
    for n in biases:
        size = int(np.prod(shapes[n]))
        floats[n] = torch.tensor(bq[offset:offset + size] * 2.0 ** b_step).view(1, *shapes[n])
        offset += size
    integer = IntegerARM.from_groups([{"weight": (wq, w_step), "bias": (bq, b_step)}], hidden,
                                     n_ctx, k=64)
    return integer, floats


def test_integer_arm_matches_the_float_arm_within_fixed_point_rounding():
    integer, floats = _quantised_arm(0)
    contexts = np.random.default_rng(1).integers(-20, 20, (1, 500, 8))
    mu_q, log_scale_q = integer(contexts)
    mu, log_scale = arm.laplace_parameters(torch.tensor(contexts, dtype=torch.float64), floats, 2)
    assert np.abs(mu_q / ONE - mu.numpy()).max() <= 4 / ONE
    assert np.abs(log_scale_q / ONE - log_scale.numpy()).max() <= 4 / ONE


def test_integer_arm_is_deterministic_and_order_independent():
    integer, _ = _quantised_arm(2)
    contexts = np.random.default_rng(3).integers(-30, 30, (1, 200, 8))
    a = integer(contexts)
    b = integer(contexts[:, ::-1].copy())
    assert np.array_equal(a[0][:, ::-1], b[0]) and np.array_equal(a[1][:, ::-1], b[1])


def test_integer_arm_refuses_what_would_overflow_or_needs_a_negative_shift():
    with pytest.raises(FormatError, match="too fine"):
        _quantised_arm(0, w_step=-17)
    integer, _ = _quantised_arm(0)
    integer.hidden_w[0][:] = 1 << 60
    with pytest.raises(FormatError, match="too large"):
        integer(np.full((1, 4, 8), 1000))


def test_the_float64_path_gives_the_int64_results_bit_for_bit(monkeypatch):
    """Under the bound every partial sum is an integer float64 holds exactly: the BLAS path
    and the integer path agree on 200,000 random contexts, and so do large ones near it."""
    from ddcodec.bitstream import armint

    integer, _ = _quantised_arm(11, n_ctx=16, hidden=2)
    assert integer.float_plan is not None  # this ARM's static bound allows the float path
    rng = np.random.default_rng(3)
    contexts = rng.integers(-64, 65, (1, 200_000, 16)).astype(np.int64)
    contexts[0, :16] = np.where(rng.random((16, 16)) < 0.5, -64, 64)  # at the static bound
    fast = integer(contexts)
    monkeypatch.setattr(armint, "FLOAT_EXACT_BELOW", 0.0)  # integer path only
    slow_arm, _ = _quantised_arm(11, n_ctx=16, hidden=2)
    assert slow_arm.float_plan is None
    slow = slow_arm(contexts)
    assert all(np.array_equal(a, b) for a, b in zip(fast, slow))
    h = rng.integers(-(1 << 24), 1 << 24, (2, 500, 8)).astype(np.int64)
    w = rng.integers(-(1 << 24), 1 << 24, (2, 3, 8)).astype(np.int64)
    b = rng.integers(-(1 << 40), 1 << 40, (2, 3)).astype(np.int64)
    exact = armint._affine(h, w, b)
    monkeypatch.setattr(armint, "FLOAT_EXACT_BELOW", 2.0 ** 52)
    assert np.array_equal(armint._affine(h, w, b), exact)  # bound ~2^51: the float path


def test_a_static_bound_over_the_limit_falls_back_to_checked_batches():
    """Weights whose worst case over every context is beyond float64's exact range give no
    float plan; each batch is then bounded on its own and still decoded exactly."""
    integer, _ = _quantised_arm(4)
    integer.hidden_w[0][0, 0, 0] = 1 << 40  # the worst context would need > 2^52
    assert integer.float_plan is None
    contexts = np.random.default_rng(5).integers(-3, 4, (1, 300, 8))
    mu, log_scale = integer(contexts)
    h = contexts.astype(np.int64) << 16
    for w, b in zip(integer.hidden_w, integer.hidden_b):
        h = np.maximum(np.einsum("gmi,goi->gmo", h, w) + b[:, None, :], 0) >> 16
    raw = (np.einsum("gmi,goi->gmo", h, integer.out_w) + integer.out_b[:, None, :]) >> 24
    assert np.array_equal(mu, np.clip(raw[..., 0], -64 * 256, 64 * 256))
