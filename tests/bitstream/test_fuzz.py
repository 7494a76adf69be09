"""A few hundred of benchmarks/fuzz.py's cases in every mode: every damaged file fails cleanly
or, where the damage was resealed behind the checksums, decodes to something well-formed;
nothing crashes, hangs, takes more memory than the documented bound, or decodes to other values
while its values checksum was left as it was."""

from collections import Counter

from ddcodec.audit.corpus import corpus
from ddcodec.audit.runner import MODES, fuzz
from ddcodec.sets.setfile import load_set
from helpers import DATA, golden_v2


def test_a_few_hundred_mutations_never_crash_hang_or_decode_silently_wrong():
    files = corpus(load_set(DATA / "golden_set.pt"), golden_v2(),
                   (DATA / "golden.ddz").read_bytes())
    counts, examples, memory = fuzz(files, cases=len(files) * len(MODES) * 4, seed=7,
                                    timeout_s=20)
    assert examples == []
    by_mode: dict[str, Counter] = {}
    for (_, mode), c in counts.items():
        by_mode.setdefault(mode, Counter()).update(c)
    assert set(by_mode) == set(MODES)
    assert by_mode["plain"]["decoded_different"] == 0 and by_mode["plain"]["rejected"] > 30
    assert by_mode["hostile-header"]["rejected"] > 30  # hostile sizes are refused, not tried
    # resealed header and file CRCs: the values CRC still catches every change in a v3 file
    for mode in ("resealed", "structure/none", "structure/crcs", "splice/crcs"):
        assert sum(c["decoded_different"] for (name, m), c in counts.items()
                   if m == mode and name.endswith("-v3")) == 0
    # forged files (every CRC recomputed) read when they are valid, and are refused otherwise
    assert by_mode["structure/all"]["rejected"] > 0
    assert by_mode["amplify/all"]["rejected"] > 0
    assert memory["measured"] == 0 or memory["worst_over_bound_mib"] < 0
