"""Random streams by purpose: run streams reproduce their published derivations; class streams
are keyed by (purpose, seed, class, counters), so a class's draws never depend on other classes."""

import pytest
import torch

from ddcodec import seeds


def test_run_streams_reproduce_the_published_derivations():
    assert [seeds.derive(p, 5) for p in ("matching_draws", "eval_draws")] == \
        [5 + 7919, 5 + 1_000_003]
    assert seeds.derive("matching_network", 2, 7) == 2 * 1_000_003 + 7
    assert seeds.derive("expert_draws", 1, 3) == 1_000_003 + 3 + 104_729
    a = torch.rand(4, generator=seeds.generator("eval_draws", 0))
    assert torch.equal(a, torch.rand(4, generator=torch.Generator().manual_seed(1_000_003)))


def test_class_streams_are_keyed_and_stable():
    draw = lambda *key: torch.rand(3, generator=seeds.keyed(*key))  # noqa: E731
    assert torch.equal(draw("latent_init", 0, 4, 1), draw("latent_init", 0, 4, 1))
    distinct = [draw(*key) for key in [("latent_init", 0, 4, 1), ("latent_init", 0, 4, 2),
                                       ("latent_init", 0, 5, 1), ("latent_init", 1, 4, 1),
                                       ("fit_targets", 0, 4, 1)]]
    assert all(not torch.equal(a, b) for i, a in enumerate(distinct) for b in distinct[i + 1:])
    # pinned: the derivation is part of every published figure (a change must be deliberate)
    assert seeds.keyed_seed("real_subset", 1, 2) == 6464012519703129810
    assert all(0 <= seeds.keyed_seed("fit_targets", s, c) < 2 ** 63
               for s in range(3) for c in range(50))


def test_unknown_streams_are_refused():
    with pytest.raises(ValueError, match="no random stream named 'latent'"):
        seeds.derive("latent", 0)
    with pytest.raises(ValueError, match="no class stream named 'latent'"):
        seeds.keyed("latent", 0, 1)
