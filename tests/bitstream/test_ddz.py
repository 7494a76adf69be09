"""The .ddz bitstream: exact round trips, sizes against estimates, golden bytes, bad input."""

import hashlib
import json
import struct
import zlib

import numpy as np
import pytest
import torch

from conftest import write_npz
from ddcodec import api
from ddcodec.bitstream import format as fmt
from ddcodec.bitstream.codec import decode_bytes, encode_set
from ddcodec.errors import DDCodecError
from ddcodec.sets.setfile import load_set

from conftest import FIXTURES as DATA
GOLDEN_V1_SHA256 = "70da267dc2dd5e1de4b8ce13ef9d62cdf66325d7777a10beddc7d81b7816bc33"
GOLDEN_V2_SHA256 = "708e2109afd19b3407c4b5a668a559fcf6745c717d99ede8d730a143d28b865b"
GOLDEN_V3_SHA256 = "ab5fbb3bbe9e8fc24f7ae7ec0fee4ba33401ada0ace535d92da5995675fac934"


@pytest.fixture(scope="module")
def ten_class_set(tmp_path_factory):
    """A latent set of 10 classes x 2 samples made on the fly."""
    root = tmp_path_factory.mktemp("ten")
    npz = write_npz(root / "ten.npz", classes=10, per_class=4, test_per_class=1, size=16)
    path = root / "set.pt"
    api.distill(f"npz:{npz}", path, param="latent", spc=2, fit_iterations=16,
                fit_candidates=2, iterations=2, batch_real=4, arm_context=8)
    return path


@pytest.fixture(scope="module")
def golden_bytes():
    return (DATA / "golden_v3.ddz").read_bytes()


def test_golden_files_are_reproduced_byte_for_byte(golden_bytes):
    distilled = load_set(DATA / "golden_set.pt")
    data, _ = encode_set(distilled)
    assert hashlib.sha256(data).hexdigest() == GOLDEN_V3_SHA256 and data == golden_bytes
    v2, _ = encode_set(distilled, version=2)  # what ddcodec wrote before the header's checksum
    assert hashlib.sha256(v2).hexdigest() == GOLDEN_V2_SHA256
    assert v2 == (DATA / "golden_v2.ddz").read_bytes()
    v1, _ = encode_set(distilled, version=1)  # what ddcodec 0.1 wrote, through the same code
    assert hashlib.sha256(v1).hexdigest() == GOLDEN_V1_SHA256
    assert v1 == (DATA / "golden.ddz").read_bytes()


def test_version_2_and_3_differ_only_in_the_version_and_checksums(golden_bytes):
    """v3 is v2 whose values checksum starts from the header: the version word, the header
    CRC and the end record's values CRC change, nothing else."""
    v2 = (DATA / "golden_v2.ddz").read_bytes()
    differ = [i for i in range(len(v2)) if v2[i] != golden_bytes[i]]
    head = 12 + struct.unpack("<I", v2[8:12])[0]
    assert len(v2) == len(golden_bytes) and golden_bytes[4:6] == b"\x03\x00"
    assert set(differ) <= {4} | set(range(head, head + 4)) | set(range(len(v2) - 4, len(v2)))
    two, three = decode_bytes(v2), decode_bytes(golden_bytes)
    assert torch.equal(two.images, three.images) and two.values_crc != three.values_crc


def test_version_1_and_2_differ_only_in_header_and_end_record():
    """v2 changes the version word, puts the kind where v1 had flags, adds the shared-decoder
    field (one byte) to the header, and its end record checksums every decoded value."""
    golden_bytes = (DATA / "golden_v2.ddz").read_bytes()
    v1 = (DATA / "golden.ddz").read_bytes()
    h1 = 12 + struct.unpack("<I", v1[8:12])[0] + 4
    h2 = 12 + struct.unpack("<I", golden_bytes[8:12])[0] + 4
    assert h2 == h1 + 1 and v1[h1:-13] == golden_bytes[h2:-13]  # every section byte for byte
    assert v1[:4] == golden_bytes[:4] and golden_bytes[4:8] == b"\x02\x00\x01\x00"
    one, two = decode_bytes(v1), decode_bytes(golden_bytes)
    assert torch.equal(one.images, two.images) and torch.equal(one.labels, two.labels)
    assert all(np.array_equal(a, b) for a, b in zip(one.latents, two.latents))
    assert (one.header.version, two.header.version) == (1, 2)


def test_decoded_latents_equal_the_encoders_and_images_match(golden_bytes):
    distilled = load_set(DATA / "golden_set.pt")
    decoded = decode_bytes(golden_bytes)
    for level, grid in enumerate(decoded.latents):
        expected = np.stack([g.latents[level].numpy() for g in distilled.codec.groups])
        assert np.array_equal(grid, expected.reshape(grid.shape))
        assert np.array_equal(grid, distilled.codec.latent_grids()[level])
    pixels = (distilled.normalization.denormalize(distilled.images) * 255).round()
    assert (decoded.images.float() - pixels).abs().max() <= 1  # within one 8-bit level
    assert torch.equal(decoded.labels, distilled.labels)
    assert decoded.header.class_names == distilled.class_names


def test_decoding_is_repeatable_and_thread_count_independent(golden_bytes, tmp_path):
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = decode_bytes(golden_bytes)
        torch.set_num_threads(2)
        two = decode_bytes(golden_bytes)
    finally:
        torch.set_num_threads(before)
    assert torch.equal(one.images, two.images)
    api.decode(golden_bytes, tmp_path / "a.pt")
    api.decode(golden_bytes, tmp_path / "b.pt")
    assert (tmp_path / "a.pt").read_bytes() == (tmp_path / "b.pt").read_bytes()


def test_size_matches_the_estimate(ten_class_set):
    data, report = api.encode(ten_class_set)
    bits = report["estimated_bits"]
    decoded = decode_bytes(data)
    estimate = sum(decoded.estimated_bits.values())
    assert abs(8 * len(data) - estimate) <= 0.005 * estimate  # padding of two 32-bit streams
    # the encoder's own parts agree with what the decoder recomputes
    assert bits["latents"] == pytest.approx(decoded.estimated_bits["latents"])
    # and with what training estimated, before any file existed
    training = load_set(ten_class_set).provenance["estimated_bits"]
    assert bits["latents"] == pytest.approx(training["latents"], rel=1e-3)
    weights = training["arm"] + training["synthesis"] + training["upsampler"]
    assert bits["weights"] == pytest.approx(weights, rel=0.03)
    assert decoded.section_bytes["header"] < 256  # 10 classes with their names


def test_info_accounts_for_every_byte(ten_class_set):
    data, _ = api.encode(ten_class_set)
    report = api.info(data)
    for key in ("file_bytes", "estimated_bits", "bpc", "num_classes", "sections"):
        assert key in report
    framing = 5 * (len(report["sections"]) - 1) + 5 + 8  # section headers + end record
    assert sum(report["sections"].values()) + framing == len(data) == report["file_bytes"]
    assert report["bpc"] == pytest.approx(8 * len(data) / 10)
    assert report["float32_bits_per_class"] == 2 * 3 * 16 * 16 * 32


def test_pixel_sets_are_lossless_8_bit(tmp_path):
    path = tmp_path / "random.pt"
    distilled = api.distill("cifar10-subset", path, loss="none", ipc=2)
    data, bits = api.encode(path)
    decoded = decode_bytes(data)
    pixels = (distilled.normalization.denormalize(distilled.images) * 255).round()
    assert torch.equal(decoded.images.float(), pixels)  # real images: exact
    assert 8 * len(data) == sum(decoded.estimated_bits.values())
    assert api.info(data)["kind"] == "pixels"
    assert len(data) < 0.8 * 20 * 3 * 32 * 32  # well under the raw 8-bit pixels


def test_exports(tmp_path, golden_bytes):
    from PIL import Image

    api.decode(golden_bytes, tmp_path / "folder", format="imagefolder")
    classes = json.loads((tmp_path / "folder" / "classes.json").read_text())
    folders = sorted(p.name for p in (tmp_path / "folder").iterdir() if p.is_dir())
    assert folders == classes["folders"] and len(folders) == 3
    png = Image.open(tmp_path / "folder" / folders[0] / "00000.png")
    assert png.size == (8, 8) and png.mode == "RGB"
    norm = json.loads((tmp_path / "folder" / "normalization.json").read_text())
    assert len(norm["mean"]) == 3
    api.decode(golden_bytes, tmp_path / "mtt", format="mtt")
    images = torch.load(tmp_path / "mtt" / "images_best.pt", weights_only=True)
    labels = torch.load(tmp_path / "mtt" / "labels_best.pt", weights_only=True)
    assert images.shape == (6, 3, 8, 8) and labels.tolist() == [0, 0, 1, 1, 2, 2]


# --- bad input -------------------------------------------------------------------------------

def _future_version(data: bytes) -> bytes:
    body = data[:4] + struct.pack("<H", 99) + data[6:]
    length = struct.unpack("<I", body[8:12])[0]
    end = 12 + length
    return body[:end] + zlib.crc32(body[:end]).to_bytes(4, "little") + body[end + 4:]


@pytest.mark.parametrize("mangle,message", [
    (lambda d: b"", "empty file"),
    (lambda d: d[:len(d) // 2], "truncated|checksum"),
    (lambda d: d[:-3], "truncated|corrupt"),
    (lambda d: d[:200] + bytes([d[200] ^ 0x10]) + d[201:], "checksum"),
    (lambda d: b"PK\x03\x04" + d[4:], "not a .ddz"),
    (_future_version, "newer ddcodec.*upgrade"),
    (lambda d: d + b"\x00", "unexpected bytes"),
])
def test_bad_files_fail_with_one_clear_line(run_cli, tmp_path, golden_bytes, mangle, message):
    bad = tmp_path / "bad.ddz"
    bad.write_bytes(mangle(golden_bytes))
    with pytest.raises(DDCodecError, match=message):
        decode_bytes(bad.read_bytes())
    for command in (("test", str(bad)), ("decode", str(bad), "-o", str(tmp_path / "o.pt")),
                    ("info", str(bad))):
        code, out, err = run_cli(*command)
        assert code == 1 and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "o.pt").exists()


def test_cli_round_trip_through_a_pipe(tmp_path):
    import subprocess
    import sys

    src = DATA / "golden_set.pt"
    enc = subprocess.run([sys.executable, "-m", "ddcodec", "encode", str(src), "-c"],
                         capture_output=True, timeout=120)
    assert enc.returncode == 0 and enc.stdout[:4] == fmt.MAGIC
    dec = subprocess.run([sys.executable, "-m", "ddcodec", "decode", "-", "-o",
                          str(tmp_path / "out.pt")], input=enc.stdout, capture_output=True,
                         timeout=120)
    assert dec.returncode == 0, dec.stderr
    assert load_set(tmp_path / "out.pt").num_images == 6


def test_cli_encode_refuses_overwrite_and_measure_reads_ddz(run_cli, tmp_path):
    out = tmp_path / "g.ddz"
    out.write_bytes(b"keep")
    code, _, err = run_cli("encode", str(DATA / "golden_set.pt"), "-o", str(out))
    assert code == 1 and "already exists" in err and out.read_bytes() == b"keep"
    assert run_cli("encode", str(DATA / "golden_set.pt"), "-o", str(out), "-f", "-q")[0] == 0
    assert run_cli("test", str(out))[0] == 0
    code, stdout, _ = run_cli("info", str(out), "--json")
    assert code == 0 and json.loads(stdout)["file_bytes"] == out.stat().st_size
    code, stdout, _ = run_cli("measure", str(out), "--epochs", "1", "--runs", "1", "--json",
                              "--data", "npz:" + str(write_npz(tmp_path / "g.npz", classes=3,
                                                               per_class=4)))
    report = json.loads(stdout)
    assert code == 0 and report["format"] == "ddz" and report["file_bytes"] == out.stat().st_size
    assert report["bpc"] == pytest.approx(8 * out.stat().st_size / 3)
    assert report["estimated_bpc"] == pytest.approx(report["bpc"], rel=0.01)


def test_a_decode_without_bits_gives_the_same_values(golden_bytes):
    full, quick = decode_bytes(golden_bytes), decode_bytes(golden_bytes, bits=False)
    assert torch.equal(full.images, quick.images) and torch.equal(full.labels, quick.labels)
    assert all(np.array_equal(a, b) for a, b in zip(full.latents, quick.latents))
    assert quick.estimated_bits == {} and sum(full.estimated_bits.values()) > 0
