"""The decoder audit's six holes, each closed: (a) size checks before allocation, (b) no coder
panic escapes, (c) set files validated with the field named, (d) bad numbers refused or
converted with a note, (e) every section consumed exactly and every value checksummed,
(f) long class names export."""

import json
import time
import tracemalloc
from dataclasses import replace

import numpy as np
import pytest
import torch

from ddcodec import api
from ddcodec.coding import entropy
from ddcodec.coding.bytesio import FormatError
from ddcodec.bitstream.codec import MEMORY_FLOOR, MEMORY_PER_FILE_BYTE, decode_bytes, encode_set
from ddcodec.coding.weight_coding import encode_weights
from ddcodec.errors import DDCodecError
from ddcodec.sets.setfile import load_set
from helpers import DATA, assemble, golden_v3, reseal_header, split, with_header


def _one_line_failure(run_cli, *args, match: str):
    code, out, err = run_cli(*args)
    assert code == 1 and len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err and "panicked" not in err and match in err, err


# (a) ------------------------------------------------------------------------------------------

def test_a_header_announcing_huge_sets_is_refused_before_any_allocation():
    pixels = encode_set(replace(load_set(DATA / "golden_set.pt"), codec=None))[0]
    for data, counts in ((golden_v3(), [10_000_000] * 3), (pixels, [10_000_000] * 3)):
        hostile = with_header(data, samples_per_class=counts)
        tracemalloc.start()
        started = time.perf_counter()
        with pytest.raises(FormatError, match="implausible for a file of"):
            decode_bytes(hostile)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert peak < 16 << 20 and time.perf_counter() - started < 1.0


def test_the_plausibility_bound_is_the_documented_multiple_of_the_file_size():
    from ddcodec.bitstream.codec import check_plausible, decoded_memory

    header = split(golden_v3())[0]
    assert decoded_memory(header) < MEMORY_FLOOR  # a real small set is far inside
    big = replace(header, samples_per_class=[400_000] * 3)
    needed = decoded_memory(big)
    too_small = (needed - MEMORY_FLOOR) // MEMORY_PER_FILE_BYTE - 1
    with pytest.raises(FormatError):
        check_plausible(big, too_small)
    check_plausible(big, too_small + 2)


# (b) ------------------------------------------------------------------------------------------

def _set_dict():
    return torch.load(DATA / "golden_set.pt", weights_only=True)


def test_an_absurd_latent_range_in_a_set_file_is_one_line_not_a_panic(run_cli, tmp_path):
    raw = _set_dict()
    raw["codec"]["config"]["k"] = 10 ** 9
    torch.save(raw, tmp_path / "k.pt")
    with pytest.raises(DDCodecError, match=r"codec.config.*k must be in \[1, 1024\]"):
        load_set(tmp_path / "k.pt")
    _one_line_failure(run_cli, "encode", str(tmp_path / "k.pt"), "-o", str(tmp_path / "k.ddz"),
                      match="codec.config")
    assert not (tmp_path / "k.ddz").exists()


def test_coder_panics_become_the_projects_errors():
    family = entropy.laplace_family(4)
    coder = entropy.Encoder("latents")
    with pytest.raises(ValueError, match="range coder refused the latents"):
        coder.encode(np.array([100], np.int32), family, np.zeros(1), np.ones(1))
    with pytest.raises(ValueError, match="out of the coder's range"):
        entropy.fixed_laplace(0, 1.0)
    decoder = entropy.Decoder(b"\xff" * 8, "latent section")
    with pytest.raises(FormatError):
        decoder.decode(family, np.zeros(1), np.full(1, np.nan))


# (c) ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("damage,field", [
    (lambda r: r["codec"]["groups"][0].pop("arm"), "codec.groups[0].arm is missing"),
    (lambda r: r["codec"]["groups"][1]["synthesis"]["weight"].update(q=torch.zeros(3)),
     "codec.groups[1].synthesis.weight.q"),
    (lambda r: r["codec"]["groups"][0]["latents"].pop(), "codec.groups[0].latents"),
    (lambda r: r["codec"]["groups"][2]["arm"]["bias"].update(step_log2=99),
     "codec.groups[2].arm.bias.step_log2"),
    (lambda r: r["codec"].pop("estimated_bits"), "codec.estimated_bits is missing"),
    (lambda r: r["codec"]["layout"].update(height=9), "codec.layout"),
    (lambda r: r["codec"].update(groups=r["codec"]["groups"][:2]), "codec.groups has 2"),
    (lambda r: r["codec"]["groups"][1].update(classes=[0]), "codec.groups[1].classes"),
    (lambda r: r["codec"]["groups"][1].update(classes=None), "codec.groups[1].classes"),
    (lambda r: r["codec"].update(config=[1]), "codec.config"),
    (lambda r: r["codec"]["groups"][0]["arm"]["weight"].update(names=5), "arm.weight.names"),
])
def test_a_damaged_payload_names_its_field(tmp_path, run_cli, damage, field):
    raw = _set_dict()
    damage(raw)
    torch.save(raw, tmp_path / "bad.pt")
    with pytest.raises(DDCodecError) as caught:
        load_set(tmp_path / "bad.pt")
    assert field in str(caught.value) and "\n" not in str(caught.value)
    _one_line_failure(run_cli, "encode", str(tmp_path / "bad.pt"), "-o",
                      str(tmp_path / "bad.ddz"), match=field.split(" ")[0])


def test_set_files_of_version_1_still_load_and_encode_identically(tmp_path):
    raw = _set_dict()
    assert raw["format_version"] == 1 and "payload_version" not in raw["codec"]
    distilled = load_set(DATA / "golden_set.pt")
    api.distill  # noqa: B018 - the API is what users call
    from ddcodec.sets.setfile import save_set

    save_set(distilled, tmp_path / "v2.pt")
    again = load_set(tmp_path / "v2.pt")
    assert torch.load(tmp_path / "v2.pt", weights_only=True)["format_version"] == 2
    assert api.encode(tmp_path / "v2.pt")[0] == golden_v3() == api.encode(
        DATA / "golden_set.pt")[0]
    assert again.codec.estimated_bits == distilled.codec.estimated_bits


# (d) ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("damage,message", [
    (lambda r: r["normalization"].update(std=[0.2, 0.0, 0.2]), "std must be finite and > 0"),
    (lambda r: r["normalization"].update(std=[0.2, float("nan"), 0.2]), "std must be finite"),
    (lambda r: r.update(labels=r["labels"].float()), "'labels' are float32"),
])
def test_bad_numbers_are_refused(tmp_path, run_cli, damage, message):
    raw = _set_dict()
    damage(raw)
    torch.save(raw, tmp_path / "bad.pt")
    with pytest.raises(DDCodecError, match=message):
        load_set(tmp_path / "bad.pt")
    _one_line_failure(run_cli, "encode", str(tmp_path / "bad.pt"), match=message.split(" ")[0])


def test_float64_images_are_converted_and_the_user_is_told(tmp_path, run_cli):
    raw = _set_dict()
    raw["images"] = raw["images"].double()
    torch.save(raw, tmp_path / "f64.pt")
    assert load_set(tmp_path / "f64.pt").notes == ["images converted from float64 to float32 "
                                                   "(exactly)"]
    code, out, err = run_cli("encode", str(tmp_path / "f64.pt"), "-o", str(tmp_path / "f.ddz"))
    assert code == 0 and "note: images converted from float64" in err
    assert (tmp_path / "f.ddz").read_bytes() == golden_v3()


# (e) ------------------------------------------------------------------------------------------

def test_every_section_is_consumed_exactly():
    header, head, sections, crc = split(golden_v3())
    for tag, change in ((3, lambda d: d + b"\0\0\0\0"), (4, lambda d: d + b"\0\0\0\0"),
                        (4, lambda d: d[:-4]), (3, lambda d: d[:-4])):
        parts = [(s.tag, change(s.data) if s.tag == tag else s.data) for s in sections]
        with pytest.raises(FormatError, match="corrupt (weight|latent) section"):
            decode_bytes(assemble(head, parts, crc))


def test_resealed_step_exponents_no_longer_decode_silently():
    header = split(golden_v3())[0]
    steps = [list(row) for row in header.latent.steps]
    steps[1][-1] -= 1  # the upsampler's step of class 1
    edited = with_header(golden_v3(), latent=replace(header.latent, steps=steps))
    with pytest.raises(FormatError, match="values checksum"):
        decode_bytes(edited)


def test_resealed_weight_integers_are_caught_by_the_values_checksum():
    header, head, sections, crc = split(golden_v3())
    from ddcodec.bitstream.geometry import geometry_from_header
    from ddcodec.coding.weight_coding import decode_weights

    weights = next(s.data for s in sections if s.tag == 3)
    ints, _ = decode_weights(weights, geometry_from_header(header).weight_counts)
    ints[-1] = ints[-1].copy()
    ints[-1][0] += 1
    parts = [(s.tag, encode_weights(ints)[0] if s.tag == 3 else s.data) for s in sections]
    with pytest.raises(FormatError, match="values checksum"):
        decode_bytes(assemble(head, parts, crc))


def test_an_unknown_kind_is_refused_with_the_readers_version():
    data = golden_v3()
    head = split(data)[1]
    bad_head = reseal_header(head[:6] + (7).to_bytes(2, "little") + head[8:])
    with pytest.raises(FormatError, match="kind 7; reader format version 3"):
        decode_bytes(bad_head + data[len(head):])


# (f) ------------------------------------------------------------------------------------------

def test_class_names_longer_than_a_file_system_allows_still_export(tmp_path):
    header = split(golden_v3())[0]
    names = ["a very long class name " * 20 + str(i) for i in range(3)]
    data = with_header(golden_v3(), reseal_values=True, class_names=names)
    api.decode(data, tmp_path / "folder", format="imagefolder")
    classes = json.loads((tmp_path / "folder" / "classes.json").read_text())
    assert classes["class_names"] == names and len(set(classes["folders"])) == 3
    assert all(len(f) <= 100 and (tmp_path / "folder" / f / "00000.png").is_file()
               for f in classes["folders"])
    assert header.class_names == ["0", "1", "2"]
