"""A few hundred of benchmarks/fuzz.py's cases: every damaged file fails cleanly or, where the
damage was resealed behind the checksums, decodes to something well-formed; nothing crashes,
hangs, or decodes silently wrong when the checksums were left alone."""

from dataclasses import replace

from ddcodec.bitstream.codec import encode_set
from ddcodec.bitstream.mutations import fuzz, with_scales, with_soft_labels
from ddcodec.setfile import load_set
from helpers import DATA, float_set, golden_v2


def test_a_few_hundred_mutations_never_crash_hang_or_decode_silently_wrong():
    pixels = encode_set(replace(load_set(DATA / "golden_set.pt"), codec=None))[0]
    files = {"latent-v2": golden_v2(), "latent-v1": (DATA / "golden.ddz").read_bytes(),
             "pixels-v2": pixels, "float-v2": encode_set(float_set())[0],
             "labels-v2": encode_set(with_soft_labels(load_set(DATA / "golden_set.pt")))[0],
             "topk-v2": encode_set(with_soft_labels(replace(load_set(DATA / "golden_set.pt"),
                                                            codec=None), "topk"))[0],
             "epochs-v2": encode_set(with_soft_labels(replace(load_set(DATA / "golden_set.pt"),
                                                              codec=None), "vq", 3))[0],
             "vqae-v2": encode_set(with_soft_labels(replace(load_set(DATA / "golden_set.pt"),
                                                            codec=None), "vqae"))[0],
             "scales-v2": encode_set(with_scales(load_set(DATA / "golden_set.pt")))[0]}
    counts, examples = fuzz(files, cases=450, seed=7, timeout_s=20)
    assert examples == []
    plain = sum((c for (_, mode), c in counts.items() if mode == "plain"), start=type(
        next(iter(counts.values())))())
    assert plain["decoded_different"] == 0 and plain["rejected"] > 100
    hostile = sum(c["rejected"] for (_, mode), c in counts.items() if mode == "hostile-header")
    assert hostile > 50  # hostile sizes are refused, not attempted
