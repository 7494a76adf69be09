import pytest
import torch

from ddcodec.errors import DDCodecError
from ddcodec.training.networks import ARCHITECTURES, build_network, canonical_arch, seeded_network


@pytest.mark.parametrize("arch", ARCHITECTURES)
@pytest.mark.parametrize("channels,size", [(1, (28, 28)), (3, (32, 32)), (3, (24, 40)),
                                           (1, (16, 16))])
def test_shapes_for_any_channel_count_and_size(arch, channels, size):
    net = build_network(arch, channels, 7, size)
    x = torch.randn(2, channels, *size)
    assert net(x).shape == (2, 7)
    features = net.embed(x)
    assert features.shape == (2, net.feature_dim)


def test_convnet_d3_matches_the_reference_layout():
    net = build_network("ConvNetD3", 3, 10, (32, 32))
    # 3 x (conv 3x3 + GroupNorm affine) + linear 2048 -> 10; the reference's count is 320,010
    assert sum(p.numel() for p in net.parameters()) == 320_010
    norms = [m for m in net.modules() if isinstance(m, torch.nn.GroupNorm)]
    assert len(norms) == 3 and all(m.num_groups == m.num_channels == 128 for m in norms)
    assert net.feature_dim == 128 * 4 * 4


def test_mnist_sized_input_is_padded_to_32():
    net = build_network("convnet", 1, 10, (28, 28))
    assert net.feature_dim == 128 * 4 * 4


def test_depth_variants_and_aliases():
    assert canonical_arch("ConvNet-D5") == "convnet-d5"
    d4 = build_network("convnet-d4", 3, 10, (32, 32))
    assert d4.feature_dim == 128 * 2 * 2
    with pytest.raises(DDCodecError, match="unknown architecture"):
        canonical_arch("transformer")


def test_seeded_network_depends_only_on_seed():
    torch.manual_seed(123)
    a = seeded_network("convnet", 3, 10, (32, 32), seed=5)
    torch.manual_seed(999)
    b = seeded_network("convnet", 3, 10, (32, 32), seed=5)
    c = seeded_network("convnet", 3, 10, (32, 32), seed=6)
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)
    assert not torch.equal(next(a.parameters()), next(c.parameters()))
