"""The rate-utility model's parts: layout, rounding proxies, upsampler, synthesis, ARM, rate."""

import math

import pytest
import torch

from ddcodec.codec import arm, laplace, upsampling
from ddcodec.codec.latents import LatentLayout, quantize, softround
from ddcodec.codec.model import CodecConfig, LatentBank, Proxy
from ddcodec.codec.synthesis import PRESETS, parameter_shapes, synthesize
from ddcodec.codec.weights import search_module, zero_mean_laplace_bits


def bank(groups=2, images=3, channels=3, size=(32, 32), **config):
    layout = LatentLayout.for_image(*size)
    return LatentBank(groups, images, channels, layout, CodecConfig(**config),
                      [torch.Generator().manual_seed(g) for g in range(groups)])


@pytest.mark.parametrize("size,grids", [((32, 32), [32, 16, 8, 4, 2, 1]),
                                        ((28, 28), [28, 14, 7, 4, 2])])
def test_latent_layout(size, grids):
    layout = LatentLayout.for_image(*size)
    assert [h for h, _ in layout.grid_sizes()] == grids
    assert layout.values_per_image == sum(g * g for g in grids)


@pytest.mark.parametrize("preset,count", [("v0", 571), ("v3-2", 1771), ("v4", 7851),
                                          ("v5", 11611), ("v6", 15371)])
def test_synthesis_parameter_counts_match_the_paper(preset, count):
    shapes = parameter_shapes(6, 3, PRESETS[preset])
    assert sum(math.prod(s) for s in shapes.values()) == count


def test_batched_synthesis_equals_each_decoder_run_alone():
    """The batched layers (matmuls on channels-last rows, grouped 3x3 convolutions) are each
    group's own network: one decoder's images do not depend on the others in the batch; and its
    in-place ReLUs and sums leave training's gradients those of the plain network."""
    torch.manual_seed(0)
    widths = PRESETS["v4"]
    params = {k: (torch.randn(3, *s) * 0.3).requires_grad_()
              for k, s in parameter_shapes(6, 3, widths).items()}
    x = torch.randn(3, 4, 6, 8, 8, requires_grad=True)
    out = synthesize(x, params, len(widths) + 1)
    assert out.shape == (3, 4, 3, 8, 8)
    reference = []
    for g in range(3):
        y = x[g]
        for i in range(len(widths) + 1):
            weight = params[f"pointwise{i}_weight"][g]
            y = torch.nn.functional.conv2d(y, weight[:, :, None, None],
                                           params[f"pointwise{i}_bias"][g])
            y = torch.relu(y) if i < len(widths) else y
        for j in range(2):
            padded = torch.nn.functional.pad(y, (1, 1, 1, 1), mode="replicate")
            y = y + torch.nn.functional.conv2d(padded, params[f"residual{j}_weight"][g],
                                               params[f"residual{j}_bias"][g])
            y = torch.relu(y) if j == 0 else y
        assert torch.allclose(out[g], y, atol=1e-4)
        reference.append(y)
    grads = torch.autograd.grad(out.square().sum(), [x, *params.values()])
    expected = torch.autograd.grad(torch.stack(reference).square().sum(), [x, *params.values()])
    # against each gradient's own scale: they reach 1e4 here, where float32 sums in another
    # order differ by 1e-3 (about 3e-7 of the scale) and an element-wise atol cannot hold
    for got, want in zip(grads, expected):
        assert (got - want).abs().max() <= 1e-5 * want.abs().max()


@pytest.mark.parametrize("ctx,hidden,count", [(32, 4, 4290), (16, 2, 578), (8, 2, 162)])
def test_arm_parameter_counts(ctx, hidden, count):
    assert sum(math.prod(s) for s in arm.parameter_shapes(ctx, hidden).values()) == count


def test_softround_and_quantize():
    x = torch.linspace(-3.4, 3.4, 101)
    assert torch.allclose(softround(x, 1e-4), torch.round(x), atol=1e-3)
    assert torch.equal(quantize(x * 30, 64, "hard"), torch.round(x * 30).clamp(-64, 63))
    assert quantize(torch.tensor([500.0, -500.0]), 64, "hard").tolist() == [63.0, -64.0]
    g = torch.Generator().manual_seed(0)
    proxy = quantize(x, 64, "proxy", 0.3, 1.0, g)
    assert (proxy - x).abs().max() < 1.0 and not torch.equal(proxy, torch.round(x))


def test_upsampler_keeps_constants_and_ramps():
    kernel = upsampling.bicubic_kernel()[None]
    const = torch.full((1, 1, 1, 4, 4), 3.0)
    assert torch.allclose(upsampling.upsample2x(const, kernel), torch.full((1, 1, 1, 8, 8), 3.0))
    ramp = torch.arange(8.0).view(1, 1, 1, 1, 8).expand(1, 1, 1, 8, 8)
    row = upsampling.upsample2x(ramp, kernel)[0, 0, 0, 4]
    # output pixel o sits at input position o/2 - 1/4; the interior is exact
    assert torch.allclose(row[3:-3], torch.arange(3, 13) / 2 - 0.25, atol=1e-5)


def test_contexts_from_shifted_views_equal_the_unfolded_window_with_bit_equal_gradients():
    """The shifted-view gather against the plain formulation (unfold the 45 window positions,
    keep n_ctx): the same contexts and, for any upstream gradient, the same input gradient bit
    for bit, so training is unchanged by the faster gather."""
    import torch.nn.functional as F

    from ddcodec.codec.architecture import HALF, WINDOW

    def unfolded(grid, offsets):
        g, n, c, h, w = grid.shape
        padded = F.pad(grid.reshape(g * n * c, 1, h, w), (HALF, HALF, HALF, 0))
        patches = F.unfold(padded, kernel_size=(HALF + 1, WINDOW))
        index = torch.tensor([(dy + HALF) * WINDOW + dx + HALF for dy, dx in offsets])
        return patches.index_select(1, index).transpose(1, 2).reshape(g, -1, len(offsets))

    generator = torch.Generator().manual_seed(0)
    for n_ctx, shape in ((16, (3, 4, 1, 16, 16)), (32, (1, 5, 2, 9, 7)), (8, (2, 1, 1, 3, 3))):
        offsets = arm.causal_offsets(n_ctx)
        grid = torch.randn(shape, generator=generator, requires_grad=True)
        fast, plain = arm.gather_contexts(grid, offsets), unfolded(grid, offsets)
        assert torch.equal(fast, plain)
        upstream = torch.randn(fast.shape, generator=generator)
        assert torch.equal(torch.autograd.grad((fast * upstream).sum(), grid)[0],
                           torch.autograd.grad((plain * upstream).sum(), grid)[0])


def test_arm_contexts_are_causal():
    offsets = arm.causal_offsets(32)
    assert len(set(offsets)) == 32 and all(dy < 0 or (dy == 0 and dx < 0) for dy, dx in offsets)
    grid = torch.zeros(1, 1, 1, 6, 6)
    grid[0, 0, 0, 3, 3] = 1.0
    ctx = arm.gather_contexts(grid, offsets).view(6, 6, 32)
    seen_by = (ctx.abs().sum(-1) > 0).nonzero().tolist()
    assert seen_by and all((y, x) > (3, 3) for y, x in seen_by)  # only later positions see it


def test_rate_equals_minus_log2_of_the_laplace_bin_mass():
    """Independent check in float64 with the textbook CDF."""
    torch.manual_seed(0)
    x = torch.randint(-20, 20, (400,)).double()
    mu = torch.randn(400).double() * 5
    log_b = torch.empty(400).double().uniform_(laplace.LOG_SCALE_MIN, 3)

    def cdf(v, m, b):
        return 0.5 + 0.5 * math.copysign(1, v - m) * (1 - math.exp(-abs(v - m) / b))

    expected = []
    for xi, mi, li in zip(x.tolist(), mu.tolist(), log_b.tolist()):
        b = math.exp(li)
        p = max(cdf(xi + 0.5, mi, b) - cdf(xi - 0.5, mi, b), laplace.PROB_FLOOR)
        expected.append(-math.log2(p))
    got = laplace.bits(x, mu, log_b)
    assert torch.allclose(got, torch.tensor(expected, dtype=torch.float64), rtol=1e-9, atol=1e-9)


def test_bank_rate_is_the_sum_over_grids_of_arm_bits():
    b = bank(groups=2, images=2)
    grids = b.quantized_latents(Proxy("hard"))
    params = b.params("arm")
    by_hand = torch.zeros(2)
    for grid in grids:
        contexts = arm.gather_contexts(grid, b.offsets)
        mu, log_scale = arm.laplace_parameters(contexts, params, b.config.arm_hidden)
        by_hand += laplace.bits(grid.reshape(2, -1), mu, log_scale).sum(1)
    assert torch.allclose(b.latent_bits(grids), by_hand)


@pytest.mark.parametrize("channels,size", [(1, (28, 28)), (3, (32, 32)), (3, (24, 40))])
def test_decoded_shapes(channels, size):
    b = bank(groups=2, images=3, channels=channels, size=size, decoder="v3-2")
    images, bits = b(Proxy("hard"))
    assert images.shape == (2, 3, channels, *size) and bits.shape == (2,)
    assert (bits > 0).all()


def test_gradients_reach_latents_and_every_decoder_part():
    b = bank(groups=2, images=2, decoder="v4", arm_context=8)
    with torch.no_grad():  # move the residual convs off zero so their inputs' grads flow too
        for p in b.parameters():
            p.add_(torch.randn(p.shape, generator=torch.Generator().manual_seed(1)) * 1e-2)
    images, bits = b(Proxy("proxy", generators=[torch.Generator().manual_seed(g) for g in (7, 8)]))
    (images.square().mean() + bits.sum() * 1e-3).backward()
    for name, p in b.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_banked_groups_are_independent():
    """Group 1's outputs do not change when group 0's parameters do."""
    b = bank(groups=2, images=2)
    before_images, before_bits = b(Proxy("hard"))
    with torch.no_grad():
        for p in b.parameters():
            p[0].add_(0.3)
    after_images, after_bits = b(Proxy("hard"))
    assert torch.allclose(before_images[1], after_images[1]) and before_bits[1] == after_bits[1]
    assert not torch.allclose(before_images[0], after_images[0])


def test_quantized_weights_round_trip():
    b = bank(groups=2, images=2, size=(8, 8))
    hard = b.quantized_latents(Proxy("hard"))
    reference = b.synthesize(hard)

    def cost():
        mse = ((b.synthesize(hard) - reference) ** 2).flatten(1).mean(1)
        return mse <= 1e-6, torch.zeros(2)

    chosen = search_module(b.module("synthesis"), "synthesis", cost)
    for g, entry in enumerate(chosen):
        for kind, group in entry.items():
            stored = group.to_dict()  # what the set file keeps and the encoder reads
            assert torch.equal(stored["q"], group.q) and stored["step_log2"] == group.step_log2
            assert tuple(tuple(s) for s in stored["shapes"]) == group.shapes
            # the module now holds exactly q * 2^step, which quantises back to q
            values = torch.cat([b.module("synthesis")[n][g].detach().flatten().double()
                                for n in group.names])
            assert torch.equal(values, group.q.double() * 2.0 ** group.step_log2)
            assert torch.equal(torch.round(values / 2.0 ** group.step_log2).int(), group.q)
    assert (((b.synthesize(hard) - reference) ** 2).flatten(1).mean(1) <= 1e-6).all()


@pytest.mark.parametrize("threshold", [1e-7, 1e-5, 1e-3])
@pytest.mark.parametrize("module", ["synthesis", "upsampler"])
def test_cheapest_first_search_chooses_what_trying_every_pair_chooses(module, threshold):
    """The search that tries each decoder's pairs cheapest first must give the exhaustive
    search's answer, step for step and integer for integer, in fewer evaluations."""
    import copy

    original = bank(groups=4, images=2, size=(16, 16))
    with torch.no_grad():  # decoders of different scales choose different steps
        for g, scale in enumerate((0.02, 0.3, 1.0, 4.0)):
            for p in original.module(module).values():
                p[g].mul_(scale)
    answers, calls = [], []
    for fixed in (False, True):
        b = copy.deepcopy(original)
        hard = b.quantized_latents(Proxy("hard"))
        reference = b.synthesize(hard)
        count = [0]

        def cost(b=b, hard=hard, reference=reference, count=count):
            count[0] += 1
            mse = ((b.synthesize(hard) - reference) ** 2).flatten(1).mean(1)
            return mse <= threshold, torch.zeros(4)

        chosen = search_module(b.module(module), module, cost, other_bits_fixed=fixed)
        answers.append([{k: (q.step_log2, q.q.tolist()) for k, q in entry.items()}
                        for entry in chosen])
        calls.append(count[0])
    assert answers[0] == answers[1]
    assert len({str(a) for a in answers[0]}) > 1  # the decoders did choose differently
    assert calls[1] < calls[0], calls


def test_weight_bits_follow_a_zero_mean_laplace():
    q = torch.tensor([[0, 1, -1, 2, 0, -3]])
    b = q.abs().double().mean()
    def p(v):
        cdf = lambda t: 0.5 * math.exp(t / b) if t < 0 else 1 - 0.5 * math.exp(-t / b)
        return cdf(v + 0.5) - cdf(v - 0.5)
    expected = sum(-math.log2(p(v)) for v in q[0].tolist()) + 32
    assert zero_mean_laplace_bits(q)[0].item() == pytest.approx(expected, rel=1e-9)
