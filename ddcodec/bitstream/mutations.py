"""Hostile variants of a .ddz file, for robustness checks (tests/bitstream/test_fuzz.py and
benchmarks/fuzz.py): random byte damage, optionally with the header and file CRCs recomputed
("resealed") so that the damage reaches the parsers behind them, and headers that announce
hostile sizes. Deterministic for a given random.Random.
"""

from __future__ import annotations

import random
import struct
import zlib
from dataclasses import replace

from ddcodec.bitstream import format as fmt
from ddcodec.bitstream.bytesio import Reader

BYTE_KINDS = ("flip", "set", "truncate", "insert", "delete", "scatter", "length")
HOSTILE_FIELDS = ("samples_per_class", "side", "channels", "levels", "classes", "decoder")


def mutate_bytes(data: bytes, rng: random.Random) -> tuple[str, bytes]:
    """One random kind of byte damage: (its name, the damaged bytes)."""
    b = bytearray(data)
    kind = rng.choice(BYTE_KINDS)
    if kind == "flip":
        b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
    elif kind == "set":
        b[rng.randrange(len(b))] = rng.randrange(256)
    elif kind == "truncate":
        del b[rng.randrange(len(b)):]
    elif kind == "insert":
        for _ in range(rng.choice((1, 4, 16))):
            b.insert(rng.randrange(len(b) + 1), rng.randrange(256))
    elif kind == "delete":
        start = rng.randrange(len(b))
        del b[start:start + rng.choice((1, 4, 16))]
    elif kind == "scatter":
        for _ in range(rng.randrange(2, 9)):
            b[rng.randrange(len(b))] = rng.randrange(256)
    else:  # a length field: the header's, or a section's, set to something hostile
        offsets = _length_offsets(data)
        at = rng.choice(offsets)
        b[at:at + 4] = struct.pack("<I", rng.choice((0, 1, 0xFFFFFFFF, 1 << 30,
                                                      rng.randrange(1 << 32))))
    return kind, bytes(b)


def _length_offsets(data: bytes) -> list[int]:
    offsets = [8]
    try:
        pos = 12 + struct.unpack_from("<I", data, 8)[0] + 4
        while pos + 5 <= len(data):
            offsets.append(pos + 1)
            pos += 5 + struct.unpack_from("<I", data, pos + 1)[0]
    except struct.error:
        pass
    return offsets


def reseal(data: bytes) -> bytes:
    """Recompute the header CRC and the file CRC (not the values CRC: that needs decoding)."""
    if len(data) < 12:
        return data
    end = 12 + struct.unpack_from("<I", data, 8)[0]
    if len(data) < end + 4:
        return data
    data = data[:end] + zlib.crc32(data[:end]).to_bytes(4, "little") + data[end + 4:]
    if len(data) >= end + 4 + 13 and data[-13] == fmt.SECTION_END:
        tail = len(data) - 13
        data = data[:tail + 5] + zlib.crc32(data[:tail]).to_bytes(4, "little") + data[tail + 9:]
    return data


def hostile_header(data: bytes, rng: random.Random) -> tuple[str, bytes]:
    """The same sections under a valid, resealed header that announces a hostile size."""
    reader = Reader(data)
    header = fmt.read_header(reader)
    head_end = reader.pos
    field = rng.choice(HOSTILE_FIELDS)
    huge = rng.choice((10, 1000, 10 ** 5, 10 ** 7))
    if field == "samples_per_class":
        header = replace(header, samples_per_class=[min(huge, fmt.LIMITS["per_class"])]
                         * header.num_classes)
    elif field == "side":
        header = replace(header, height=rng.choice((1, 8192)), width=rng.choice((1, 8192)))
    elif field == "channels":
        c = rng.choice((1, 64))
        header = replace(header, channels=c, mean=[0.5] * c, std=[0.25] * c)
    elif field == "classes":
        n = rng.choice((1, 1000, 100_000))
        header = replace(header, class_names=[str(i) for i in range(n)],
                         samples_per_class=[header.samples_per_class[0]] * n)
    elif field == "levels" and header.latent is not None:
        header.latent = replace(header.latent, levels=rng.choice((1, 16)))
    elif field == "decoder" and header.latent is not None:
        header.latent = replace(header.latent, decoder=rng.choice(("v7", "v5-3", "nope")))
    body = fmt.write_header(header, header.version) + data[head_end:]
    return f"header:{field}", reseal(body)


# ------------------------------------------------------------------------------------- runner

OUTCOMES = ("rejected", "decoded_same", "decoded_different", "crash", "hang")


class _Hang(Exception):
    pass


def run_case(data: bytes, reference, timeout_s: float = 10.0) -> tuple[str, str]:
    """Decode `data` in this process: (outcome, detail). `reference` is the Decoded of the
    undamaged file; a decode that gives other images or labels is 'decoded_different'."""
    import signal

    import torch

    from ddcodec.bitstream.codec import decode_bytes
    from ddcodec.errors import DDCodecError

    def alarm(signum, frame):
        raise _Hang()

    timed = hasattr(signal, "setitimer")  # POSIX; elsewhere a hang would simply block
    if timed:
        previous = signal.signal(signal.SIGALRM, alarm)
        signal.setitimer(signal.ITIMER_REAL, timeout_s)
    try:
        decoded = decode_bytes(data)
    except DDCodecError as exc:
        return "rejected", str(exc).split(":")[0][:60]
    except _Hang:
        return "hang", ""
    except BaseException as exc:  # noqa: BLE001 - everything else is a crash, panics included
        if isinstance(exc, KeyboardInterrupt):
            raise
        return "crash", f"{type(exc).__name__}: {str(exc)[:200]}"
    finally:
        if timed:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
    same = (decoded.images.shape == reference.images.shape
            and torch.equal(decoded.images, reference.images)
            and torch.equal(decoded.labels, reference.labels)
            and _same_extras(decoded, reference))
    return ("decoded_same" if same else "decoded_different"), ""


def _same_extras(decoded, reference) -> bool:
    """Soft labels and a distributional file's scales are part of what a file decodes to."""
    import torch

    if (decoded.soft_labels is None) != (reference.soft_labels is None) or (
            decoded.sampler is None) != (reference.sampler is None):
        return False
    if reference.soft_labels is not None and not torch.equal(
            decoded.soft_labels.probabilities, reference.soft_labels.probabilities):
        return False
    if reference.sampler is not None:
        a, b = decoded.sampler.scales, reference.sampler.scales
        return torch.equal(a.codes, b.codes) and (a.samples, a.seed) == (b.samples, b.seed)
    return True


def with_scales(distilled, samples: int = 2, seed: int = 5):
    """A latent set made distributional with deterministic spreads (codes varied per prior and
    level): a base file whose scales section gets fuzzed too."""
    import torch

    from ddcodec.distribution import Scales

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


def with_soft_labels(distilled, codec: str = "vq", epochs: int = 0):
    """The set with deterministic soft labels (seeded distributions; VQ with 4 entries, top-2
    or float16; `epochs` > 0: per-epoch rows): a base file whose labels section gets fuzzed
    too."""
    import torch

    from ddcodec.labels import as_float16, as_topk, as_vq
    from ddcodec.names import DEFAULT_STRATEGY
    from ddcodec.vqae import as_vqae

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
    return replace(distilled, soft_labels=soft)


def corpus(distilled, golden_v2: bytes, golden_v1: bytes) -> dict[str, bytes]:
    """The files fuzzing mutates, one of every layout a reader meets: the golden latent files
    (v2 and v1), and from the golden set its pixel, float, labelled (each label codec, per-epoch
    rows), distributional and substream encodings."""
    from ddcodec.bitstream.codec import encode_set

    pixels = replace(distilled, codec=None)
    return {"latent-v2": golden_v2, "latent-v1": golden_v1,
            "pixels-v2": encode_set(pixels)[0], "float-v2": encode_set(off_grid(distilled))[0],
            "labels-v2": encode_set(with_soft_labels(distilled))[0],
            "topk-v2": encode_set(with_soft_labels(pixels, "topk"))[0],
            "epochs-v2": encode_set(with_soft_labels(pixels, "vq", 3))[0],
            "vqae-v2": encode_set(with_soft_labels(pixels, "vqae"))[0],
            "scales-v2": encode_set(with_scales(distilled))[0],
            "streams-v2": encode_set(distilled, streams=distilled.num_classes)[0]}


def fuzz(files: dict[str, bytes], cases: int, seed: int = 0, timeout_s: float = 10.0):
    """`cases` mutations spread over `files`: a third plain byte damage, a third resealed byte
    damage, a third resealed hostile headers. Returns per (file, mode) outcome counts and the
    first few details of each bad outcome."""
    from collections import Counter

    from ddcodec.bitstream.codec import decode_bytes

    rng = random.Random(seed)
    references = {name: decode_bytes(data) for name, data in files.items()}
    counts: dict[tuple[str, str], Counter] = {}
    examples: list[dict] = []
    names = sorted(files)
    for i in range(cases):
        name = names[i % len(names)]
        mode = ("plain", "resealed", "hostile-header")[(i // len(names)) % 3]
        original = files[name]
        if mode == "hostile-header":
            kind, data = hostile_header(original, rng)
        else:
            kind, data = mutate_bytes(original, rng)
            if mode == "resealed":
                data = reseal(data)
        if data == original:
            outcome, detail = "unchanged", ""
        else:
            outcome, detail = run_case(data, references[name], timeout_s)
        counts.setdefault((name, mode), Counter())[outcome] += 1
        bad = outcome in ("crash", "hang") or (outcome == "decoded_different"
                                               and mode == "plain")
        if bad and len(examples) < 20:
            examples.append({"file": name, "mode": mode, "kind": kind, "outcome": outcome,
                             "detail": detail, "case": i})
    return counts, examples
