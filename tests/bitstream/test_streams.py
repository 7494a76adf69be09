"""Latent substreams: the same latents in S independent streams, decoded alike by one process
or several, for a few bytes per stream; and the files that misuse them refused."""

import numpy as np
import pytest
import torch

from ddcodec.bitstream import sections
from ddcodec.coding.bytesio import FormatError, Writer
from ddcodec.bitstream.codec import decode_bytes, encode_set
from ddcodec.sets.setfile import load_set
from helpers import DATA, assemble, split


@pytest.fixture(scope="module")
def golden():
    return load_set(DATA / "golden_set.pt")  # 3 classes, a decoder each


def _same(a, b) -> bool:
    return (all(np.array_equal(x, y) for x, y in zip(a.latents, b.latents))
            and torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels))


@pytest.mark.parametrize("streams", [2, 3])
def test_substreams_decode_to_the_single_streams_values_in_one_process_or_several(golden,
                                                                                  streams):
    one, _ = encode_set(golden)
    split_file, bits = encode_set(golden, streams=streams)
    assert split_file != one
    reference = decode_bytes(one)
    for workers in (1, 2):
        assert _same(decode_bytes(split_file, workers=workers), reference)
    # the cost: the count, and each extra stream's flush word and length, nothing else
    assert 0 < len(split_file) - len(one) <= 1 + 6 * (streams - 1)
    assert abs(8 * len(split_file) - sum(bits.values())) <= 8 * (4 * streams + 40)


def test_one_stream_writes_the_golden_bytes_and_more_streams_than_decoders_are_refused(golden):
    from helpers import golden_v3

    assert encode_set(golden, streams=1)[0] == golden_v3()
    with pytest.raises(ValueError, match="choose 2 to 3"):
        encode_set(golden, streams=4)


def _sections(data: bytes):
    header, head, parts, crc = split(data)
    return head, [(s.tag, s.data) for s in parts], crc


def test_a_file_with_both_latent_layouts_or_bad_stream_lengths_is_refused(golden):
    head, parts, crc = _sections(encode_set(golden, streams=3)[0])
    single = dict(_sections(encode_set(golden)[0])[1])[sections.LatentsSection.tag]
    tag = sections.LatentStreamsSection.tag
    weights, streams = parts[0], parts[1:]
    both = [weights, (sections.LatentsSection.tag, single)] + streams  # in registry order
    with pytest.raises(FormatError, match="both a latents and a latent substreams"):
        decode_bytes(assemble(head, both, crc))
    with pytest.raises(FormatError, match="latents section is out of order"):
        decode_bytes(assemble(head, parts + [(sections.LatentsSection.tag, single)], crc))
    body = dict(parts)[tag]
    for count, lengths in ((1, []), (3, [5, 4]), (3, [4, 1 << 20])):
        w = Writer()
        w.varint(count)
        for n in lengths:
            w.varint(n)
        bad = [(t, w.getvalue() + body[3:] if t == tag else d) for t, d in parts]
        with pytest.raises(FormatError, match="latent substreams"):
            decode_bytes(assemble(head, bad, crc))


def test_cli_encodes_substreams_and_decodes_them_with_workers(tmp_path, run_cli, golden):
    source = DATA / "golden_set.pt"
    out = tmp_path / "s.ddz"
    assert run_cli("encode", str(source), "-o", str(out), "--streams", "3", "-q")[0] == 0
    assert run_cli("decode", str(out), "-o", str(tmp_path / "s.pt"), "--workers", "2",
                   "-q")[0] == 0
    assert torch.equal(load_set(tmp_path / "s.pt").images,
                       decode_bytes(out.read_bytes()).to_set().images)
    code, _, err = run_cli("encode", str(source), "-o", str(tmp_path / "t.ddz"), "--streams",
                           "9")
    assert code == 1 and err.strip().count("\n") == 0 and "choose 2 to 3" in err
    assert not (tmp_path / "t.ddz").exists()


def test_leaving_out_the_closed_loop_check_changes_no_byte(golden, monkeypatch):
    """Rate control's trial encodes skip the check (they want the size); the bytes are the
    same, and the check itself is what catches a decoder that disagrees."""
    import ddcodec.bitstream.codec as codec

    assert encode_set(golden, check=False)[0] == encode_set(golden)[0]
    real = codec.decode_bytes

    def off_by_one(data, **kwargs):
        decoded = real(data, **kwargs)
        decoded.latents[0][0, 0, 0, 0] += 1
        return decoded

    monkeypatch.setattr(codec, "decode_bytes", off_by_one)
    encode_set(golden, check=False)
    with pytest.raises(RuntimeError, match="did not reproduce"):
        encode_set(golden)


@pytest.mark.parametrize("workers", [1, 2])
def test_a_damaged_substream_is_refused_by_one_process_or_several(golden, workers):
    head, parts, crc = _sections(encode_set(golden, streams=3)[0])
    tag = sections.LatentStreamsSection.tag
    bad = [(t, d[:-4] + bytes(4) if t == tag else d) for t, d in parts]
    with pytest.raises(FormatError, match="corrupt latent substream"):
        decode_bytes(assemble(head, bad, crc), workers=workers)


def test_a_shared_decoder_set_has_nothing_to_split(tiny_npz, tmp_path, run_cli):
    from ddcodec import api

    path = tmp_path / "shared.pt"
    api.distill(f"npz:{tiny_npz}", path, device="cpu", param="latent", spc=2, fit_iterations=4,
                fit_candidates=1, iterations=1, batch_real=4, shared_decoder=True,
                dsa_strategy="flip")
    code, _, err = run_cli("encode", str(path), "-o", str(tmp_path / "s.ddz"), "--streams", "2")
    assert code == 1 and "nothing to split into substreams" in err
    assert not (tmp_path / "s.ddz").exists()
