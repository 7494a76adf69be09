"""The .ddz bitstream: exact round trips, sizes against estimates, golden bytes, bad input."""

import hashlib
import json
import random
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import write_npz
from ddcodec import api
from ddcodec.bitstream import format as fmt
from ddcodec.bitstream.bytesio import FormatError
from ddcodec.bitstream.codec import decode_bytes, encode_set
from ddcodec.errors import DDCodecError
from ddcodec.setfile import load_set

DATA = Path(__file__).parent / "data"
GOLDEN_SHA256 = "70da267dc2dd5e1de4b8ce13ef9d62cdf66325d7777a10beddc7d81b7816bc33"


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
    return (DATA / "golden.ddz").read_bytes()


def test_golden_file_is_reproduced_byte_for_byte(golden_bytes):
    data, _ = encode_set(load_set(DATA / "golden_set.pt"))
    assert hashlib.sha256(data).hexdigest() == GOLDEN_SHA256
    assert data == golden_bytes


def test_decoded_latents_equal_the_encoders_and_images_match(golden_bytes):
    distilled = load_set(DATA / "golden_set.pt")
    decoded = decode_bytes(golden_bytes)
    for level, grid in enumerate(decoded.latents):
        expected = np.stack([g["latents"][level].numpy() for g in distilled.codec["groups"]])
        assert np.array_equal(grid, expected.reshape(grid.shape))
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


def _mutate(data: bytes, rng: random.Random) -> bytes:
    b = bytearray(data)
    kind = rng.randrange(6)
    if kind == 0:
        i = rng.randrange(len(b))
        b[i] ^= 1 << rng.randrange(8)
    elif kind == 1:
        b[rng.randrange(len(b))] = rng.randrange(256)
    elif kind == 2:
        del b[rng.randrange(len(b)):]
    elif kind == 3:
        b.insert(rng.randrange(len(b) + 1), rng.randrange(256))
    elif kind == 4:
        del b[rng.randrange(len(b))]
    else:
        for _ in range(rng.randrange(1, 9)):
            b[rng.randrange(len(b))] = rng.randrange(256)
    return bytes(b)


def test_fuzz_mutations_always_fail_cleanly(golden_bytes):
    """1,200 random mutations: every one is caught as a corrupt file, never a crash or a hang."""
    rng = random.Random(1234)
    for _ in range(1200):
        mutated = _mutate(golden_bytes, rng)
        if mutated == golden_bytes:
            continue
        with pytest.raises(FormatError):
            decode_bytes(mutated)


def _reseal(data: bytes) -> bytes:
    """Recompute the header and file checksums so that parsing goes past them."""
    length = struct.unpack("<I", data[8:12])[0] if len(data) >= 12 else 0
    end = 12 + length
    if len(data) < end + 4 + 13:
        return data
    data = data[:end] + zlib.crc32(data[:end]).to_bytes(4, "little") + data[end + 4:]
    tail = len(data) - 13
    return data[:tail + 5] + zlib.crc32(data[:tail]).to_bytes(4, "little") + data[tail + 9:]


def test_fuzz_behind_the_checksums_never_crashes(golden_bytes):
    """Mutations with valid checksums reach every parser: each decodes or fails cleanly."""
    rng = random.Random(99)
    outcomes = {"decoded": 0, "rejected": 0}
    for _ in range(400):
        mutated = _reseal(_mutate(golden_bytes, rng))
        try:
            decoded = decode_bytes(mutated)
        except FormatError:
            outcomes["rejected"] += 1
            continue
        assert decoded.images.dtype == torch.uint8
        outcomes["decoded"] += 1
    assert outcomes["rejected"] > 100


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
