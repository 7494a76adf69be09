"""The .ddz container: header, length-prefixed sections, end record. Layout in docs/FORMAT.md.

Nothing here unpickles, and no length is used before it has been checked against the bytes that
are actually there and against sane limits, so a corrupt or hostile file fails with one clear
error instead of a huge allocation or a silent misread.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field

from ddcodec.bitstream.bytesio import FormatError, Reader, Writer

MAGIC = b"DDZ\x1a"
FORMAT_VERSION = 1
FLAG_LATENT = 1  # latent grids + decoders (else 8-bit pixels)
FLAG_SHARED_DECODER = 2
FLAG_SOFT_LABELS = 4  # reserved: a later version fills the soft-label section
KNOWN_FLAGS = FLAG_LATENT | FLAG_SHARED_DECODER

SECTION_END = 0
SECTION_SOFT_LABELS = 2
SECTION_WEIGHTS = 3
SECTION_LATENTS = 4
SECTION_PIXELS = 5
SECTION_NAMES = {SECTION_SOFT_LABELS: "soft_labels", SECTION_WEIGHTS: "weights",
                 SECTION_LATENTS: "latents", SECTION_PIXELS: "pixels", SECTION_END: "end"}

LIMITS = {"channels": 64, "side": 8192, "classes": 1_000_000, "per_class": 10_000_000,
          "levels": 16, "hidden": 16, "k": 1024, "meta": 64}
STEP_RANGE = (-32, 0)


@dataclass
class LatentHeader:
    decoder: str
    arm_context: int
    arm_hidden: int
    levels: int
    channels_per_level: int
    gain: float
    k: int
    steps: list[list[int]]  # per decoder: step exponents of its tensor groups, canonical order


@dataclass
class Header:
    channels: int
    height: int
    width: int
    class_names: list[str]
    samples_per_class: list[int]
    mean: list[float]
    std: list[float]
    shared_decoder: bool = False
    latent: LatentHeader | None = None
    meta: dict[str, str] = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def num_images(self) -> int:
        return sum(self.samples_per_class)

    @property
    def flags(self) -> int:
        return (FLAG_LATENT if self.latent else 0) | (FLAG_SHARED_DECODER if self.shared_decoder
                                                      else 0)


def write_header(h: Header) -> bytes:
    body = Writer()
    for v in (h.channels, h.height, h.width, h.num_classes):
        body.varint(v)
    for name in h.class_names:
        body.text(name)
    for n in h.samples_per_class:
        body.varint(n)
    for v in (*h.mean, *h.std):
        body.f32(v)
    if h.latent is not None:
        lat = h.latent
        body.text(lat.decoder)
        for v in (lat.arm_context, lat.arm_hidden, lat.levels, lat.channels_per_level, lat.k):
            body.varint(v)
        body.f32(lat.gain)
        body.varint(len(lat.steps))
        for steps in lat.steps:
            body.varint(len(steps))
            for s in steps:
                body.svarint(s)
    body.varint(len(h.meta))
    for key, value in h.meta.items():
        body.text(key)
        body.text(value)
    payload = body.getvalue()
    head = Writer()
    head.raw(MAGIC)
    head.u16(FORMAT_VERSION)
    head.u16(h.flags)
    head.u32(len(payload))
    head.raw(payload)
    data = head.getvalue()
    return data + zlib.crc32(data).to_bytes(4, "little")


def read_header(reader: Reader) -> Header:
    start = reader.pos
    if reader.remaining == 0:
        raise FormatError("empty file: not a .ddz file")
    magic = reader.take(min(4, reader.remaining))
    if magic != MAGIC:
        raise FormatError("not a .ddz file (bad magic bytes)")
    version = reader.u16()
    if version > FORMAT_VERSION:
        raise FormatError(f"made by a newer ddcodec (format version {version}; this one reads "
                          f"up to {FORMAT_VERSION}): upgrade ddcodec")
    if version < 1:
        raise FormatError(f"unsupported format version {version}")
    flags = reader.u16()
    if flags & ~KNOWN_FLAGS:
        raise FormatError(f"uses features this ddcodec does not know (flags {flags:#x}): "
                          "upgrade ddcodec")
    length = reader.u32()
    body = Reader(reader.take(length), "header")
    crc = reader.u32()
    if zlib.crc32(bytes(reader.data[start:reader.pos - 4])) != crc:
        raise FormatError("header checksum mismatch: the file is corrupt")
    try:
        return _parse_body(body, flags)
    except FormatError:
        raise
    except (ValueError, OverflowError) as exc:
        raise FormatError(f"corrupt header ({exc})") from exc


def _parse_body(r: Reader, flags: int) -> Header:
    channels = r.varint(LIMITS["channels"])
    height, width = r.varint(LIMITS["side"]), r.varint(LIMITS["side"])
    classes = r.varint(LIMITS["classes"])
    if min(channels, height, width, classes) < 1:
        raise FormatError("corrupt header: zero-sized images or no classes")
    names = [r.text() for _ in range(classes)]
    counts = [r.varint(LIMITS["per_class"]) for _ in range(classes)]
    mean = [r.f32() for _ in range(channels)]
    std = [r.f32() for _ in range(channels)]
    latent = None
    if flags & FLAG_LATENT:
        decoder = r.text(64)
        arm_context, arm_hidden = r.varint(64), r.varint(LIMITS["hidden"])
        levels, per_level, k = r.varint(LIMITS["levels"]), r.varint(LIMITS["channels"]), \
            r.varint(LIMITS["k"])
        gain = r.f32()
        groups = r.varint(LIMITS["classes"])
        steps = []
        for _ in range(groups):
            n = r.varint(8)
            steps.append([r.svarint(64) for _ in range(n)])
        if any(not STEP_RANGE[0] <= s <= STEP_RANGE[1] for row in steps for s in row):
            raise FormatError("corrupt header: quantisation step out of range")
        if levels < 1 or per_level < 1 or k < 1:
            raise FormatError("corrupt header: bad latent layout")
        latent = LatentHeader(decoder, arm_context, arm_hidden, levels, per_level, gain, k, steps)
    meta = {}
    for _ in range(r.varint(LIMITS["meta"])):
        key = r.text(256)
        meta[key] = r.text()
    if r.remaining:
        raise FormatError("corrupt header: unexpected bytes at its end")
    return Header(channels, height, width, names, counts, mean, std,
                  bool(flags & FLAG_SHARED_DECODER), latent, meta)


def write_section(tag: int, data: bytes) -> bytes:
    w = Writer()
    w.u8(tag)
    w.u32(len(data))
    w.raw(data)
    return w.getvalue()


def read_sections(reader: Reader) -> tuple[dict[int, bytes], int, int]:
    """All sections up to the end record; returns them, the file CRC and the latent CRC."""
    sections: dict[int, bytes] = {}
    while True:
        if reader.remaining == 0:
            raise FormatError("truncated file: the end record is missing")
        tag_pos = reader.pos
        tag = reader.u8()
        length = reader.u32()
        if tag == SECTION_END:
            if length != 8:
                raise FormatError("corrupt end record")
            file_crc, latent_crc = reader.u32(), reader.u32()
            if zlib.crc32(bytes(reader.data[:tag_pos])) != file_crc:
                raise FormatError("payload checksum mismatch: the file is corrupt")
            if reader.remaining:
                raise FormatError(f"{reader.remaining} unexpected bytes after the end record")
            return sections, file_crc, latent_crc
        if tag not in SECTION_NAMES:
            raise FormatError(f"unknown section {tag}: corrupt file or a newer format")
        if tag in sections:
            raise FormatError(f"section {SECTION_NAMES[tag]} appears twice")
        sections[tag] = reader.take(length)


def end_record(data_before: bytes, latent_crc: int) -> bytes:
    w = Writer()
    w.u8(SECTION_END)
    w.u32(8)
    w.u32(zlib.crc32(data_before))
    w.u32(latent_crc)
    return w.getvalue()
