"""A few hundred of benchmarks/fuzz.py's cases: every damaged file fails cleanly or, where the
damage was resealed behind the checksums, decodes to something well-formed; nothing crashes,
hangs, or decodes silently wrong when the checksums were left alone."""

from ddcodec.bitstream.mutations import corpus, fuzz
from ddcodec.setfile import load_set
from helpers import DATA, golden_v2


def test_a_few_hundred_mutations_never_crash_hang_or_decode_silently_wrong():
    files = corpus(load_set(DATA / "golden_set.pt"), golden_v2(),
                   (DATA / "golden.ddz").read_bytes())
    counts, examples = fuzz(files, cases=450, seed=7, timeout_s=20)
    assert examples == []
    plain = sum((c for (_, mode), c in counts.items() if mode == "plain"), start=type(
        next(iter(counts.values())))())
    assert plain["decoded_different"] == 0 and plain["rejected"] > 100
    hostile = sum(c["rejected"] for (_, mode), c in counts.items() if mode == "hostile-header")
    assert hostile > 50  # hostile sizes are refused, not attempted
