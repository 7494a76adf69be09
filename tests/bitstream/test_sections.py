"""The section registry: one module per part, ancillary parts skipped by readers without them,
unknown critical parts refused."""

import numpy as np
import pytest
import torch

from ddcodec.bitstream import format as fmt
from ddcodec.coding.bytesio import FormatError
from ddcodec.bitstream.codec import decode_bytes, encode_set
from ddcodec.bitstream.sections import (REGISTRY, CodingState, SectionCodec, parts_for, register,
                                        unregister)
from ddcodec.sets.setfile import load_set
from helpers import DATA, assemble, golden_v3, split

NOTE_TAG = fmt.ANCILLARY | 0x30


class NoteSection(SectionCodec):
    """A test-only ancillary part: a short UTF-8 note."""

    tag, name, kinds = NOTE_TAG, "note", (fmt.Kind.PIXELS, fmt.Kind.LATENT)

    def encode(self, state: CodingState) -> tuple[bytes, float]:
        data = "made by a test".encode()
        return data, 8.0 * len(data)

    def decode(self, data: bytes, state: CodingState) -> float:
        state.extras["note"] = data.decode()
        return 8.0 * len(data)


@pytest.fixture
def note_part():
    register(NoteSection())
    try:
        yield
    finally:
        unregister(NOTE_TAG)


def test_the_built_in_parts_are_registered_in_file_order():
    assert [p.name for p in parts_for(fmt.Kind.LATENT)] == [
        "weights", "latents", "latent substreams", "labels", "scales", "fkd views"]
    assert REGISTRY[4].slot == REGISTRY[9].slot == "latents"  # one of the two layouts
    assert [p.name for p in parts_for(fmt.Kind.PIXELS)] == ["pixels", "labels", "fkd views"]
    assert [p.name for p in parts_for(fmt.Kind.FLOAT_PIXELS)] == ["float pixels", "labels",
                                                                  "fkd views"]
    assert not REGISTRY[10].required  # FKD views: only with labels on a relabelling's views
    assert not REGISTRY[7].required  # soft labels are optional; hard ones are in the header
    assert not REGISTRY[8].required  # scales: only distributional sets have them
    assert all(not p.ancillary for p in REGISTRY.values())
    with pytest.raises(ValueError, match="taken"):
        register(REGISTRY[3])


def test_a_reader_without_an_ancillary_part_skips_it_and_decodes_the_rest(note_part):
    distilled = load_set(DATA / "golden_set.pt")
    with_note, bits = encode_set(distilled)
    assert "note" in bits and with_note != golden_v3()
    known = decode_bytes(with_note)
    assert known.section_bytes["note"] == len("made by a test") and not known.skipped_sections
    unregister(NOTE_TAG)  # a reader that has never heard of it
    plain, skipped = decode_bytes(golden_v3()), decode_bytes(with_note)
    assert skipped.skipped_sections == [NOTE_TAG]
    assert torch.equal(plain.images, skipped.images) and torch.equal(plain.labels, skipped.labels)
    assert all(np.array_equal(a, b) for a, b in zip(plain.latents, skipped.latents))


def test_an_unknown_critical_section_is_refused_naming_tag_and_version():
    _, head, sections, crc = split(golden_v3())
    data = assemble(head, [(s.tag, s.data) for s in sections] + [(0x30, b"x")], crc)
    with pytest.raises(FormatError, match=r"unknown critical section 0x30 .*format version 3"):
        decode_bytes(data)


def test_a_section_of_another_kind_or_a_missing_one_is_refused():
    _, head, sections, crc = split(golden_v3())
    data = assemble(head, [(s.tag, s.data) for s in sections] + [(5, b"")], crc)
    with pytest.raises(FormatError, match="latent file's section 0x05"):
        decode_bytes(data)
    data = assemble(head, [(s.tag, s.data) for s in sections if s.tag != 4], crc)
    with pytest.raises(FormatError, match="latents section is missing"):
        decode_bytes(data)


def test_the_parts_of_one_file_share_one_geometry_read_from_its_header():
    """Every section of a latent file takes its geometry from the coding state, worked out once
    from the header: the same object each time, matching the file."""
    header = split(golden_v3())[0]
    state = CodingState(header)
    assert state.geometry is state.geometry
    decoded = decode_bytes(golden_v3())
    assert state.geometry.groups * state.geometry.per_group == decoded.header.num_images


def test_a_spare_word_in_the_latent_section_is_refused_except_in_the_encoders_closed_loop():
    """decode proves the latent stream ends where its data does; only the encoder's closed loop,
    whose bytes are those very symbols' encode, may leave that proof out (it compares latents)."""
    _, head, sections, values_crc = split(golden_v3())
    latents = next(tag for tag, part in REGISTRY.items() if part.name == "latents")
    padded = assemble(head, [(s.tag, s.data + b"\0\0\0\0" if s.tag == latents else s.data)
                             for s in sections], values_crc)
    with pytest.raises(FormatError, match="does not end where"):
        decode_bytes(padded, images=False, bits=False)
    loose = decode_bytes(padded, images=False, bits=False, check_ends=False)
    exact = decode_bytes(golden_v3(), images=False, bits=False)
    assert all(np.array_equal(a, b) for a, b in zip(loose.latents, exact.latents))
