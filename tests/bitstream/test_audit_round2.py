"""The second independent audit's findings (issue 32), one test each: memory amplification
through valid files, a crash on a non-numeric syn_lr, values the values checksum did not cover,
unvalidated normalisation, sections out of order, files `encode` wrote that `decode` refused,
internal errors and memory exhaustion in `encode`."""

from __future__ import annotations

import math
import random
import time
from dataclasses import replace
from pathlib import Path

import pytest

from ddcodec import api
from ddcodec.bitstream import codec
from ddcodec.coding.bytesio import FormatError
from ddcodec.bitstream.codec import decode_bytes, decoded_memory, encode_set, memory_bound
from ddcodec.audit.hostile_inputs import CRAFTS, make, try_encode
from ddcodec.audit.corpus import with_soft_labels
from ddcodec.audit.mutations import (amplified_labels, join, label_fields, parse, reseal,
                                     reseal_all, zero_decoders, _write_fields)
from ddcodec.errors import DDCodecError
from ddcodec.sets.setfile import load_set
from helpers import DATA, golden_v3, with_header

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def golden():
    return load_set(DATA / "golden_set.pt")


@pytest.fixture(scope="module")
def labelled(golden):
    """v3 files of the golden images with static VQ, per-epoch top-k and VQAE labels."""
    pixels = replace(golden, codec=None)
    return {"vq": encode_set(with_soft_labels(pixels, "vq"))[0],
            "topk-epochs": encode_set(with_soft_labels(pixels, "topk", 2))[0],
            "vqae": encode_set(with_soft_labels(pixels, "vqae"))[0],
            "vq-weight": encode_set(with_soft_labels(pixels, "vq", hard_weight=0.25))[0]}


# 1. memory amplification --------------------------------------------------------------------

@pytest.mark.parametrize("rung", ["topk", "vq", "vqae"])
def test_per_epoch_labels_that_amplify_a_small_file_are_refused_at_once(rung):
    data = amplified_labels(rung, epochs=10_000, images=3_355, classes=2)
    started = time.perf_counter()
    with pytest.raises(FormatError, match="implausible for this file's size"):
        api.test(data)
    assert time.perf_counter() - started < 2
    small = decode_bytes(amplified_labels(rung, epochs=10, images=100, classes=2))
    assert small.soft_labels.probabilities.shape == (1000, 2)  # the same layout, small: read


def test_decoder_weights_count_in_the_memory_bound():
    data = zero_decoders(100, "v7")  # 100 decoders x 0.5 M zero weights in 1.6 KB
    assert len(data) < 2000
    with pytest.raises(FormatError, match="100 decoders of 528,557 weights"):
        decode_bytes(data)
    few = zero_decoders(2, "v0", levels=2, channels_per_level=1, arm_context=8, arm_hidden=1)
    assert decode_bytes(few).images.shape == (2, 3, 1, 1)


def test_every_committed_file_stays_inside_the_bound():
    """Real sets, whose files grow with what they hold, decode within the documented bound:
    the cached curve and Tiny-ImageNet points, the golden files."""
    files = sorted((ROOT / "benchmarks" / "cache").rglob("*.ddz")) + sorted(DATA.glob("*.ddz"))
    assert len(files) >= 10
    for path in files:
        data = path.read_bytes()
        decoded = decode_bytes(data, images=False, bits=False)
        assert decoded_memory(decoded.header) < memory_bound(len(data)), path


# 2. syn_lr that is not a number; 4. normalisation -------------------------------------------

@pytest.mark.parametrize("change, message", [
    (dict(meta={"method": "x", "syn_lr": "1x"}), "metadata syn_lr '1x'"),
    (dict(meta={"syn_lr": "-0.01"}), "metadata syn_lr"),
    (dict(meta={"resize": "0x32"}), "metadata resize"),
    (dict(std=[0.0, 0.25, 0.25]), "std 0.0 must be a positive"),
    (dict(mean=[math.nan, 0.5, 0.5]), "mean nan must be a finite"),
    (dict(std=[math.inf, 0.25, 0.25]), "std inf"),
])
def test_bad_header_values_are_refused_even_with_every_checksum_forged(change, message, run_cli,
                                                                       tmp_path):
    data = with_header(golden_v3(), reseal_values=True, **change)
    with pytest.raises(FormatError, match=f"corrupt header: {message}"):
        decode_bytes(data)
    path = tmp_path / "forged.ddz"
    path.write_bytes(data)
    for command in (["test", str(path)], ["info", str(path)],
                    ["decode", str(path), "-o", str(tmp_path / "out.pt")]):
        code, _, err = run_cli(*command)
        assert code == 1 and "corrupt header" in err and "internal error" not in err
        assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out.pt").exists()


# 3. values checksum coverage ------------------------------------------------------------------

def _move_sample(h):
    counts = list(h.samples_per_class)
    counts[0], counts[1] = counts[0] - 1, counts[1] + 1
    return {"samples_per_class": counts}


HEADER_EDITS = {
    "hard labels": _move_sample,
    "class order": lambda h: {"class_names": [h.class_names[1], h.class_names[0],
                                              *h.class_names[2:]]},
    "class name": lambda h: {"class_names": ["cat2", *h.class_names[1:]]},
    "mean": lambda h: {"mean": [h.mean[0] + 0.01, *h.mean[1:]]},
    "std": lambda h: {"std": [h.std[0] * 2, *h.std[1:]]},
    "gain": lambda h: {"latent": replace(h.latent, gain=2 * h.latent.gain)},
    "meta": lambda h: {"meta": {**h.meta, "data": "npz:other.npz"}},
}


@pytest.mark.parametrize("edit", sorted(HEADER_EDITS))
def test_header_values_are_inside_the_values_checksum(edit, labelled):
    # one decoder per class needs equal counts: a sample moves between classes of a pixel file
    data = labelled["vq"] if edit == "hard labels" else golden_v3()
    header = parse(data)[0]
    forged = with_header(data, **HEADER_EDITS[edit](header))  # header and file CRC recomputed
    with pytest.raises(FormatError, match="values checksum"):
        decode_bytes(forged)
    assert decode_bytes(reseal_all(forged)).header != header  # valid with all three forged


@pytest.mark.parametrize("file, field, value", [
    ("vq", "step", None), ("topk-epochs", "bits", None), ("vq", "temperature", 2.5),
    ("vq", "loss", 0), ("topk-epochs", "seed", 4), ("topk-epochs", "strategy", "color_crop"),
    ("vqae", "weight_step", None), ("vq-weight", "hard_weight", 0.5),
])
def test_label_parameters_are_inside_the_values_checksum(labelled, file, field, value):
    data = labelled[file]
    header, head, sections, values_crc = parse(data)
    tag, body = sections[-1]
    fields, rest = label_fields(body)
    entry = next(f for f in fields if f[0] == field)
    entry[2] = value if value is not None else entry[2] + 1
    forged = reseal(join(head, sections[:-1] + [(tag, _write_fields(fields, rest))],
                         values_crc))
    with pytest.raises(FormatError, match="values checksum"):
        decode_bytes(forged)


@pytest.mark.parametrize("weight", [0.0, 1.5, float("nan")])
def test_a_forged_hard_weight_outside_its_range_is_refused(labelled, weight):
    header, head, sections, values_crc = parse(labelled["vq-weight"])
    tag, body = sections[-1]
    fields, rest = label_fields(body)
    next(f for f in fields if f[0] == "hard_weight")[2] = weight
    forged = reseal_all(join(head, sections[:-1] + [(tag, _write_fields(fields, rest))],
                             values_crc))
    with pytest.raises(FormatError, match=r"hard weight outside \(0, 1\]"):
        decode_bytes(forged)


def test_version_2_files_are_still_read_and_a_downgrade_is_caught(golden):
    v2 = (DATA / "golden_v2.ddz").read_bytes()
    assert decode_bytes(v2).header.version == 2
    v3 = golden_v3()
    downgraded = reseal(v3[:4] + (2).to_bytes(2, "little") + v3[6:])
    with pytest.raises(FormatError, match="values checksum"):
        decode_bytes(downgraded)


# 5. section order -----------------------------------------------------------------------------

def test_sections_in_another_order_are_refused(labelled):
    header, head, sections, values_crc = parse(labelled["vq"])
    assert len(sections) == 2
    with pytest.raises(FormatError, match="out of order"):
        decode_bytes(join(head, sections[::-1], values_crc))


# 6-8. encode: limits shared with the decoder, no internal errors, no blow-up ----------------

@pytest.mark.parametrize("kind", CRAFTS)
def test_hostile_encode_inputs_are_refused_in_one_line(kind, tmp_path):
    path, source, options = make(kind, tmp_path, random.Random(0))
    outcome, detail = try_encode(path, source, options)
    assert outcome == "refused", (outcome, detail)
    assert "\n" not in detail


def test_encode_refuses_out_of_range_labels_before_writing(tmp_path, run_cli):
    path, _, _ = make("set:vq-step-17", tmp_path, random.Random(0))
    out = tmp_path / "labels.ddz"
    code, _, err = run_cli("encode", str(path), "-o", str(out))
    assert code == 1 and not out.exists() and len(err.strip().splitlines()) == 1
    assert err.strip().endswith("vq step exponent 17 is outside [-16, 16]")


def test_the_label_limits_are_the_decoders(labelled):
    """A VQ step one past the limit: encode refuses it, and a forged file carrying it is refused
    by the decoder with the same words."""
    header, head, sections, values_crc = parse(labelled["vq"])
    tag, body = sections[-1]
    fields, rest = label_fields(body)
    next(f for f in fields if f[0] == "step")[2] = 17
    forged = reseal_all(join(head, sections[:-1] + [(tag, _write_fields(fields, rest))],
                             values_crc))
    with pytest.raises(FormatError, match="vq step exponent 17 is outside"):
        decode_bytes(forged)


def test_expanded_tensors_are_refused_before_they_are_materialised(tmp_path):
    import resource

    path, source, options = make("set:images-stride0", tmp_path, random.Random(0))
    assert path.stat().st_size < 64_000
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(DDCodecError, match="expanded or overlapping view"):
        api.encode(path)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200_000  # KiB


def test_the_documented_bound_is_the_code_s():
    text = (ROOT / "docs" / "FORMAT.md").read_text()
    assert f"{codec.MEMORY_FLOOR >> 20} MiB" in text
    assert f"{codec.MEMORY_PER_FILE_BYTE:,} bytes per byte of the file" in text
    assert f"{codec.WEIGHT_BYTES} bytes per decoder weight" in text
