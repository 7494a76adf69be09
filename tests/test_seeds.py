"""Random streams by purpose: reproducible, distinct, and unchanged (the published figures
depend on these exact derivations)."""

import pytest
import torch

from ddcodec import seeds


def test_streams_reproduce_the_published_derivations():
    assert [seeds.derive(p, 5) for p in ("real_subset", "latent_init", "quantisation_noise",
                                         "matching_draws", "eval_draws")] == \
        [5, 22, 36, 5 + 7919, 5 + 1_000_003]
    assert seeds.derive("matching_network", 2, 7) == 2 * 1_000_003 + 7
    assert seeds.derive("expert_draws", 1, 3) == 1_000_003 + 3 + 104_729
    a = torch.rand(4, generator=seeds.generator("latent_init", 0))
    assert torch.equal(a, torch.rand(4, generator=torch.Generator().manual_seed(17)))


def test_unknown_streams_are_refused():
    with pytest.raises(ValueError, match="no random stream named 'latent'"):
        seeds.derive("latent", 0)
