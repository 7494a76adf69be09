"""Hostile variants of a .ddz file, for robustness checks (ddcodec.audit.runner fuzzes a reader
with them: tests/bitstream/test_fuzz.py and benchmarks/fuzz.py): random byte damage, optionally
with the header and file CRCs recomputed ("resealed") so that the damage reaches the parsers
behind them, headers that announce hostile sizes, structure-aware edits and splices, and forged
files that amplify a few bytes. Deterministic for a given random.Random.
"""

from __future__ import annotations

import math
import random
import struct
import zlib
from dataclasses import replace

from ddcodec.bitstream import format as fmt
from ddcodec.coding.bytesio import Reader
from ddcodec.bitstream.codec import decode_bytes
from ddcodec.bitstream.label_coding import HARD_WEIGHT, PER_EPOCH
from ddcodec.bitstream.latent_coding import code_latents
from ddcodec.bitstream.pixel_coding import encode_pixels
from ddcodec.bitstream.sections import CodingState, integer_arm
from ddcodec.codec.arm import causal_offsets
from ddcodec.codec.geometry import tensor_groups
from ddcodec.codec.latents import LatentLayout
from ddcodec.codec.model import CodecConfig
from ddcodec.coding.bytesio import Writer
from ddcodec.coding.entropy import Encoder
from ddcodec.coding.weight_coding import encode_weights
from ddcodec.errors import DDCodecError
from ddcodec.labels.rungs import by_wire_id, spec_of
from ddcodec.names import DEFAULT_STRATEGY

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
    body = fmt.write_header(header, header.version, check=False) + data[head_end:]
    return f"header:{field}", reseal(body)


# --------------------------------------------------------------------------- checksums, crafts

def reseal_all(data: bytes) -> bytes:
    """`reseal` and the values CRC too: what a deliberate forger writes. The values CRC is
    worked out by decoding the sections (no images); a file that does not decode is returned
    resealed as far as `reseal` goes."""
    data = reseal(data)
    try:
        crc = decode_bytes(data, images=False, bits=False, check_values=False).values_crc
    except DDCodecError:
        return data
    return data[:-4] + crc.to_bytes(4, "little")


def zero_decoders(classes: int = 100, decoder: str = "v7", side: int = 1, levels: int = 16,
                  channels_per_level: int = 64, arm_context: int = 32,
                  arm_hidden: int = 16) -> bytes:
    """A valid, tiny file with `classes` per-class decoders of the `decoder` preset whose weights
    are all zero, and one 1 x 1 image per class: a few bytes a decoder, yet every decoder's
    weights are allocated when it is read (a 1,370-byte file that would take 1.2 GB)."""
    import numpy as np

    header = fmt.Header(3, side, side, [str(c) for c in range(classes)], [1] * classes,
                        [0.5] * 3, [0.25] * 3,
                        latent=fmt.LatentHeader(decoder, arm_context, arm_hidden, levels,
                                                channels_per_level, 1.0, 8, []))
    lat = header.latent
    config = CodecConfig(decoder=decoder, arm_context=arm_context, arm_hidden=arm_hidden,
                         levels=levels, channels_per_level=channels_per_level, k=lat.k)
    n_groups = len(tensor_groups(config, LatentLayout(side, side, levels, channels_per_level), 3))
    header.latent.steps = [[-8] * n_groups for _ in range(classes)]
    state = CodingState(header)
    geometry = state.geometry
    # an all-zero group codes as its M = 0 whatever its size: the section without allocating
    # the weights, and an ARM built from the ARM groups alone (the others are not read)
    weights, _ = encode_weights([np.zeros(0, np.int32)] * len(geometry.weight_counts))
    arm_groups = {i for i, (module, _, _) in enumerate(geometry.order) if module == "arm"}
    ints = [np.zeros(n if i % len(geometry.order) in arm_groups else 0, np.int32)
            for i, n in enumerate(geometry.weight_counts)]
    state.arm = integer_arm(geometry, ints, header.latent.steps)
    grids = [np.zeros((geometry.groups, geometry.planes, h, w), np.int64)
             for h, w in geometry.layout.grid_sizes()]
    coder = Encoder("latents")
    code_latents("encode", state.arm, causal_offsets(arm_context), geometry.layout.grid_sizes(),
                 geometry.groups, geometry.planes, coder, grids)
    body = (fmt.write_header(header) + fmt.write_section(3, weights)
            + fmt.write_section(4, coder.to_bytes()))
    return reseal_all(body + fmt.end_record(body, 0))


def amplified_labels(codec: str = "topk", epochs: int = 10_000, images: int = 3_355,
                     classes: int = 2) -> bytes:
    """A valid, tiny file of `images` 1 x 1 black pixels whose per-epoch soft labels take one
    value each (top-1, a one-entry VQ codebook or VQ autoencoder: nothing to range-code), so
    `epochs` x `images` x `classes` values come from a few bytes (a 173-byte file)."""
    import numpy as np

    header = fmt.Header(3, 1, 1, [str(c) for c in range(classes)],
                        [images] + [0] * (classes - 1), [0.5] * 3, [0.25] * 3)
    rows = epochs * images
    labels = Writer()
    labels.u8(spec_of(codec).wire_id | 0x80)
    labels.u8(0)
    labels.f32(1.0)
    labels.varint(epochs)
    labels.varint(0)
    labels.text(DEFAULT_STRATEGY)
    if codec == "topk":
        labels.u8(1)
        labels.u8(1)
        for count in [rows] + [0] * (classes - 1):
            labels.varint(count)
        labels.varint(1)
        labels.varint(1)
        labels.varint(rows)
    else:
        labels.svarint(0)
        if codec == "vqae":
            labels.svarint(0)
        labels.varint(1)
        shapes = [classes] if codec == "vq" else [1, 1, 1, classes, classes]
        if codec == "vqae":
            labels.varint(1)
            labels.varint(1)
        block, _ = encode_weights([np.zeros(n, np.int32) for n in shapes])
        labels.varint(len(block))
        labels.raw(block)
        labels.varint(rows)
    labels.varint(0)
    pixels, _ = encode_pixels(np.zeros((images, 3, 1, 1), np.uint8))
    body = (fmt.write_header(header) + fmt.write_section(5, pixels)
            + fmt.write_section(7, labels.getvalue()))
    return reseal_all(body + fmt.end_record(body, 0))


# ------------------------------------------------------------------ structure-aware mutation

RESEALS = ("none", "crcs", "all")  # checksums after a mutation: as they were, header and
# file CRCs recomputed, or every CRC recomputed (the values CRC by decoding: a forger's file)


def resealed(data: bytes, how: str, original: bytes) -> bytes:
    """`data` (made with fresh CRCs) with the checksums `how` says: `none` puts back the
    original's header CRC and end record CRCs, as a damaged file would carry them."""
    if how == "none":
        return _checksums_of(data, original)
    return {"crcs": reseal, "all": reseal_all}[how](data)


def _checksums_of(data: bytes, original: bytes) -> bytes:
    try:
        end = 12 + struct.unpack_from("<I", data, 8)[0]
        old = 12 + struct.unpack_from("<I", original, 8)[0]
    except struct.error:
        return data
    if len(data) < end + 4 + 13 or len(original) < old + 4 + 13:
        return data
    data = data[:end] + original[old:old + 4] + data[end + 4:]
    return data[:-8] + original[-8:]


def parse(data: bytes) -> tuple[fmt.Header, bytes, list[tuple[int, bytes]], int]:
    """(header, header bytes, [(tag, section bytes)], values CRC) of a file that parses."""
    reader = Reader(data)
    header = fmt.read_header(reader)
    head = data[:reader.pos]
    sections, values_crc = fmt.read_sections(reader)
    return header, head, [(s.tag, s.data) for s in sections], values_crc


def join(head: bytes, sections: list[tuple[int, bytes]], values_crc: int) -> bytes:
    """A file from parts with a correct file CRC (callers reseal or not as they choose)."""
    body = head + b"".join(fmt.write_section(t, d) for t, d in sections)
    return body + fmt.end_record(body, values_crc)


def _pick_class(h: fmt.Header, rng: random.Random, loaded: bool = False) -> int:
    choices = [c for c, n in enumerate(h.samples_per_class) if n > 0 or not loaded]
    return rng.choice(choices)


def _move_sample(h: fmt.Header, rng: random.Random) -> fmt.Header:
    counts = list(h.samples_per_class)
    i = _pick_class(h, rng, loaded=True)
    j = rng.choice([c for c in range(len(counts)) if c != i] or [i])
    counts[i] -= 1
    counts[j] += 1
    return replace(h, samples_per_class=counts)


def _swap_names(h: fmt.Header, rng: random.Random) -> fmt.Header:
    names = list(h.class_names)
    if len(names) > 1:
        i, j = rng.sample(range(len(names)), 2)
        names[i], names[j] = names[j], names[i]
    else:
        names[0] += "x"
    return replace(h, class_names=names)


def _rename(h: fmt.Header, rng: random.Random) -> fmt.Header:
    names = list(h.class_names)
    names[rng.randrange(len(names))] += rng.choice(("x", "\u00e9", " "))
    return replace(h, class_names=names)


def _normalisation(h: fmt.Header, rng: random.Random) -> fmt.Header:
    mean, std = list(h.mean), list(h.std)
    c = rng.randrange(h.channels)
    if rng.random() < 0.5:
        mean[c] = rng.choice((math.nan, math.inf, mean[c] + 0.01, -mean[c]))
    else:
        std[c] = rng.choice((0.0, -std[c], 2 * std[c], math.nan, 1e-30))
    return replace(h, mean=mean, std=std)


def _gain(h: fmt.Header, rng: random.Random) -> fmt.Header:
    if h.latent is None:
        return _normalisation(h, rng)
    return replace(h, latent=replace(h.latent, gain=rng.choice((math.nan, 2 * h.latent.gain))))


META_EDITS = (("syn_lr", "1x"), ("syn_lr", "nan"), ("syn_lr", "-1"), ("syn_lr", "0.02"),
              ("syn_lr", "inf"), ("zca_eps", "nan"), ("zca_eps", "0"), ("zca_eps", "0.2"),
              ("resize", "0x4"), ("resize", "16x16"), ("resize", "4"), ("pixels", "16bit"),
              ("psnr_db", "abc"), ("method", "other"), ("data", "x"))


def _meta(h: fmt.Header, rng: random.Random) -> fmt.Header:
    key, value = rng.choice(META_EDITS)
    return replace(h, meta={**h.meta, key: value})


def _step(h: fmt.Header, rng: random.Random) -> fmt.Header:
    if h.latent is None:
        return _move_sample(h, rng)
    steps = [list(row) for row in h.latent.steps]
    g, i = rng.randrange(len(steps)), rng.randrange(len(steps[0]))
    steps[g][i] += rng.choice((-1, 1))
    return replace(h, latent=replace(h.latent, steps=steps))


def _amplify(h: fmt.Header, rng: random.Random) -> fmt.Header:
    factor = rng.choice((2, 100, 10_000))
    return replace(h, samples_per_class=[min(n * factor, fmt.LIMITS["per_class"])
                                         for n in h.samples_per_class])


HEADER_EDITS = {"move-sample": _move_sample, "swap-names": _swap_names, "rename": _rename,
                "normalisation": _normalisation, "gain": _gain, "meta": _meta, "step": _step,
                "amplify-samples": _amplify}


def label_fields(data: bytes) -> tuple[list[list], bytes]:
    """A labels section as [name, wire, value] fields up to its coded data, and the rest."""
    r = Reader(data)
    fields = [["codec", "u8", r.u8()], ["loss", "u8", r.u8()], ["temperature", "f32", r.f32()]]
    if fields[0][2] & HARD_WEIGHT:
        fields += [["hard_weight", "f32", r.f32()]]
    if fields[0][2] & PER_EPOCH:
        fields += [["epochs", "varint", r.varint()], ["seed", "varint", r.varint()],
                   ["strategy", "text", r.text()]]
    spec = by_wire_id(fields[0][2] & ~(PER_EPOCH | HARD_WEIGHT))
    codec = spec.name if spec is not None else ""
    wires = {"vq": [("step", "svarint"), ("k", "varint")],
             "topk": [("k", "u8"), ("bits", "u8")],
             "vqae": [("step", "svarint"), ("weight_step", "svarint"), ("k", "varint"),
                      ("code", "varint"), ("hidden", "varint")]}.get(codec, [])
    for name, wire in wires:
        fields.append([name, wire, getattr(r, wire)()])
    return fields, data[r.pos:]


def _write_fields(fields: list[list], rest: bytes) -> bytes:
    w = Writer()
    for _, wire, value in fields:
        getattr(w, wire)(value)
    return w.getvalue() + rest


def _new_value(wire: str, value, rng: random.Random):
    if wire == "u8":
        return rng.choice([v for v in (value ^ 1, (value + 1) % 256, 255, 0) if v != value])
    if wire == "f32":
        return rng.choice((2 * value, math.nan, 0.0, -value, 1e-30))
    if wire == "varint":
        return rng.choice((value + 1, max(value - 1, 0), value * 1000 + 1, 0, 1 << 40))
    if wire == "svarint":
        return rng.choice((value + 1, value - 1, 17, -(1 << 31)))
    return rng.choice(("color_crop", "flip", "nope", "color_crop_cutout_flip_scale_rotate"))


def mutate_structure(data: bytes, rng: random.Random) -> tuple[str, bytes]:
    """One field of the header, one parameter of the labels section, or one byte of another
    section changed, the rest of the file as it was (checksums included: reseal after)."""
    header, head, sections, values_crc = parse(data)
    target = rng.randrange(len(sections) + 1)
    if target == len(sections):
        name = rng.choice(sorted(HEADER_EDITS))
        edited = HEADER_EDITS[name](header, rng)
        return f"header:{name}", join(fmt.write_header(edited, edited.version, check=False),
                                      sections, values_crc)
    tag, body = sections[target]
    if tag == 7:
        fields, rest = label_fields(body)
        field = rng.randrange(len(fields))
        fields[field][2] = _new_value(fields[field][1], fields[field][2], rng)
        sections = list(sections)
        sections[target] = (tag, _write_fields(fields, rest))
        return f"labels:{fields[field][0]}", join(head, sections, values_crc)
    if not body:
        return f"section {tag}:empty", data
    b = bytearray(body)
    at = rng.randrange(len(b))
    b[at] ^= 1 << rng.randrange(8)
    sections = list(sections)
    sections[target] = (tag, bytes(b))
    return f"section {tag}:bit", join(head, sections, values_crc)


def splice(data: bytes, donor: bytes, rng: random.Random) -> tuple[str, bytes]:
    """A section of another file (another kind, codec or layout) put in this one: in place of
    the section with its tag, or added."""
    header, head, sections, values_crc = parse(data)
    tag, body = rng.choice(parse(donor)[2])
    mine = [t for t, _ in sections]
    sections = ([(t, body if t == tag else d) for t, d in sections] if tag in mine
                else sections + [(tag, body)])
    return f"splice:{tag}", join(head, sections, values_crc)


AMPLIFIERS = ("topk", "vq", "vqae", "decoders")


def amplified(rng: random.Random) -> tuple[str, bytes]:
    """A valid, forged file that announces much more than its size (see amplified_labels and
    zero_decoders), its amounts drawn around the memory bound."""
    kind = rng.choice(AMPLIFIERS)
    if kind == "decoders":
        classes = rng.choice((2, 10, 100))
        return f"amplify:{kind}x{classes}", zero_decoders(
            classes, rng.choice(("v0", "v5-3", "v7")), levels=rng.choice((1, 8, 16)),
            channels_per_level=rng.choice((1, 16, 64)), arm_context=rng.choice((8, 32)),
            arm_hidden=rng.choice((0, 4, 16)))
    epochs = rng.choice((10, 500, 2_000, 10_000))
    return f"amplify:{kind}x{epochs}", amplified_labels(kind, epochs,
                                                        rng.choice((100, 1_000, 3_355)),
                                                        rng.choice((2, 10)))
