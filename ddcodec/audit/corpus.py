"""The files fuzzing starts from: one golden set in every layout a reader meets (latent, pixel,
float, each label codec, per-epoch rows, FKD views, distributional scales, class substreams,
the older format versions)."""

from __future__ import annotations

from dataclasses import replace

from ddcodec.bitstream.codec import encode_set
from ddcodec.labels.rungs.float16 import as_float16
from ddcodec.labels.rungs.topk import as_topk
from ddcodec.labels.rungs.vq import as_vq
from ddcodec.labels.vqae import as_vqae
from ddcodec.names import DEFAULT_STRATEGY
from ddcodec.sets.distributional import Scales


def with_scales(distilled, samples: int = 2, seed: int = 5):
    """A latent set made distributional with deterministic spreads (codes varied per prior and
    level): a base file whose scales section gets fuzzed too."""
    import torch

    p = distilled.codec
    shape = (len(p.groups), p.groups[0].n_images, p.layout.levels)
    codes = (torch.arange(int(torch.tensor(shape).prod())) * 7 % 40 + 100).view(shape)
    return replace(distilled, codec=replace(p, scales=Scales(codes.to(torch.int16), samples,
                                                             seed)))


def off_grid(distilled):
    """A pixel set moved off the 8-bit grid by a small deterministic wobble, as a learnt
    MTT-style set is: its file holds exact float32 values (a base file for fuzzing)."""
    import torch

    wobble = torch.sin(torch.arange(distilled.images.numel(), dtype=torch.float32)) * 1e-3
    return replace(distilled, codec=None,
                   images=distilled.images + wobble.view_as(distilled.images))


def with_soft_labels(distilled, codec: str = "vq", epochs: int = 0, hard_weight: float = 0.0):
    """The set with deterministic soft labels (seeded distributions; VQ with 4 entries, top-2
    or float16; `epochs` > 0: per-epoch rows; `hard_weight`: the class's share): a base file
    whose labels section gets fuzzed too."""
    import torch

    generator = torch.Generator().manual_seed(0)
    rows = distilled.num_images * max(1, epochs)
    logits = torch.randn(rows, distilled.num_classes, generator=generator)
    probabilities = torch.softmax(2 * logits, dim=1)
    views = (dict(epochs=epochs, view_seed=3, view_strategy=DEFAULT_STRATEGY) if epochs
             else {})
    soft = {"vq": lambda: as_vq(probabilities, 4, temperature=2.0, loss="kl", **views),
            "topk": lambda: as_topk(probabilities, 2, temperature=1.0, **views),
            "float16": lambda: as_float16(probabilities, temperature=1.0, **views),
            "vqae": lambda: as_vqae(probabilities, 4, temperature=1.0, **views)}[codec]()
    return replace(distilled, soft_labels=replace(soft, hard_weight=hard_weight))


def with_fkd(distilled, epochs: int = 2):
    """The set with an FKD relabelling's views (crops on the integer grid, flips, CutMix in two
    batches) and float16 per-epoch labels on them: a base file whose views section gets fuzzed
    too."""
    import torch

    from ddcodec.labels.rungs.float16 import as_float16
    from ddcodec.names import FKD_VIEW_STRATEGY
    from ddcodec.sets.fkd import FkdViews

    n, (_, h, w) = distilled.num_images, distilled.image_shape
    batch = max(1, (n + 1) // 2)
    batches = -(-n // batch)
    g = torch.Generator().manual_seed(1)
    ints = torch.randint(0, min(h, w) // 2 + 1, (epochs, n, 4), generator=g)
    coords = (ints.double() / torch.tensor([h, w, h, w], dtype=torch.float64)).float()
    partners = torch.cat([torch.cat([torch.randperm(min(batch, n - b * batch), generator=g)
                                     for b in range(batches)])[None] for _ in range(epochs)])
    views = FkdViews(42, batch, coords, torch.rand(epochs, n, generator=g) < 0.5, "cutmix",
                     partners, torch.rand(epochs, batches, generator=g, dtype=torch.float64),
                     torch.tensor([0, 0, h // 2, w // 2]).repeat(epochs, batches, 1))
    rows = torch.softmax(torch.randn(epochs * n, distilled.num_classes, generator=g), 1)
    soft = as_float16(rows, temperature=3.0, loss="kl", epochs=epochs,
                      view_strategy=FKD_VIEW_STRATEGY)
    return replace(distilled, soft_labels=soft, fkd=views)


def corpus(distilled, golden_v2: bytes, golden_v1: bytes) -> dict[str, bytes]:
    """The files fuzzing mutates, one of every layout a reader meets: the golden latent set as
    `encode` writes it (v3) and as older versions wrote it (v2, v1, still read), and from the
    golden set its pixel, float, labelled (each label codec, per-epoch rows, an FKD
    relabelling's views), distributional and substream encodings."""
    pixels = replace(distilled, codec=None)
    made = {"latent": distilled, "pixels": pixels, "float": off_grid(distilled),
            "labels": with_soft_labels(distilled), "topk": with_soft_labels(pixels, "topk"),
            "epochs": with_soft_labels(pixels, "vq", 3),
            "epochs-topk": with_soft_labels(pixels, "topk", 2),
            "vqae": with_soft_labels(pixels, "vqae"), "scales": with_scales(distilled),
            "hard-weight": with_soft_labels(pixels, "topk", 2, hard_weight=0.25),
            "fkd": with_fkd(pixels)}
    files = {f"{name}-v3": encode_set(s)[0] for name, s in made.items()}
    files["streams-v3"] = encode_set(distilled, streams=distilled.num_classes)[0]
    return {**files, "latent-v2": golden_v2, "latent-v1": golden_v1}
