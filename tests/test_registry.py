"""Registries, not if/elif chains: every name the configs accept has exactly one registered
implementation, and a new kind is one registration."""

from ddcodec.bitstream.format import Kind
from ddcodec.bitstream.sections import REGISTRY, parts_for
from ddcodec.distillation.config import LOSSES, PARAMS
from ddcodec.distillation.objectives import OBJECTIVES
from ddcodec.distillation.run import REPRESENTATIONS
from ddcodec.names import ARCHITECTURES
from ddcodec.training.networks import NETWORKS, build_network


def test_every_accepted_name_has_one_registered_implementation():
    assert set(REPRESENTATIONS) == set(PARAMS)
    assert set(OBJECTIVES) == set(LOSSES) - {"none"}  # none: a random real subset, no objective
    assert set(NETWORKS) == set(ARCHITECTURES)
    assert all(parts_for(kind) for kind in Kind) and len(REGISTRY) >= 3


def test_every_registered_network_builds_and_embeds():
    import torch

    x = torch.zeros(2, 3, 32, 32)
    for arch in NETWORKS:
        net = build_network(arch, 3, 10, (32, 32))
        assert net(x).shape == (2, 10) and net.embed(x).shape[0] == 2
