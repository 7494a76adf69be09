"""The .ddz container: header, tagged length-prefixed sections, end record (docs/FORMAT.md).

The header's fields are declared once, in `HEADER_FIELDS`, as (name, wire type, since which
version, for which kinds); the writer and the reader are the same loop over that table, so they
cannot drift apart. Version 1 (ddcodec 0.1) is read through the same table: its one difference
in the header is a flags word where version 2 has the `kind`, and the shared-decoder flag that
version 2 carries as a field.

Section tags: the low 7 bits name the section, the high bit marks it ancillary (PNG's rule): a
reader skips an ancillary section it does not know and refuses a critical one.

Nothing here unpickles, and no length is used before it has been checked against the bytes that
are actually there and against sane limits.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, Callable

from ddcodec.bitstream.bytesio import FormatError, Reader, Writer
from ddcodec.bitstream.fixedpoint import MAX_K, STEP_RANGE

MAGIC = b"DDZ\x1a"
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)
ANCILLARY = 0x80  # tag bit: a reader may skip this section if it does not know it
SECTION_END = 0

LIMITS = {"channels": 64, "side": 8192, "classes": 1_000_000, "per_class": 10_000_000,
          "levels": 16, "hidden": 16, "k": MAX_K, "meta": 64}


class Kind(IntEnum):
    """What the file holds; decides which sections it needs and how images are made."""

    PIXELS = 0  # 8-bit pixels, coded losslessly (images on the 8-bit grid, or declared 8-bit)
    LATENT = 1  # latent grids and decoders (the rate-utility model)
    FLOAT_PIXELS = 2  # float16/float32 values, coded exactly (sets off the 8-bit grid)


V1_FLAG_LATENT, V1_FLAG_SHARED_DECODER = 1, 2  # version 1's flags word


# ------------------------------------------------------------------------------ wire types

@dataclass(frozen=True)
class Wire:
    """How one header value travels: write(writer, value) and read(reader, values so far)."""

    write: Callable[[Writer, Any], None]
    read: Callable[[Reader, dict], Any]


def varint(limit: int) -> Wire:
    return Wire(lambda w, v: w.varint(v), lambda r, _: r.varint(limit))


def svarint(limit: int) -> Wire:
    return Wire(lambda w, v: w.svarint(v), lambda r, _: r.svarint(limit))


def text(limit: int = 4096) -> Wire:
    return Wire(lambda w, v: w.text(v), lambda r, _: r.text(limit))


F32 = Wire(lambda w, v: w.f32(v), lambda r, _: r.f32())


def repeated(item: Wire, count: str) -> Wire:
    """A list whose length is an earlier field (not written again)."""
    def write(w: Writer, values) -> None:
        for v in values:
            item.write(w, v)

    return Wire(write, lambda r, seen: [item.read(r, seen) for _ in range(seen[count])])


def counted(item: Wire, limit: int) -> Wire:
    """A list with its own varint length."""
    def write(w: Writer, values) -> None:
        w.varint(len(values))
        for v in values:
            item.write(w, v)

    return Wire(write, lambda r, seen: [item.read(r, seen) for _ in range(r.varint(limit))])


def mapping(limit: int) -> Wire:
    def write(w: Writer, values: dict) -> None:
        w.varint(len(values))
        for key, value in values.items():
            w.text(key)
            w.text(value)

    def read(r: Reader, _) -> dict:
        out = {}
        for _ in range(r.varint(limit)):
            key = r.text(256)
            out[key] = r.text()
        return out

    return Wire(write, read)


@dataclass(frozen=True)
class Field:
    name: str
    wire: Wire
    since: int = 1
    kinds: tuple[Kind, ...] = tuple(Kind)


LATENT = (Kind.LATENT,)
HEADER_FIELDS: tuple[Field, ...] = (
    Field("channels", varint(LIMITS["channels"])),
    Field("height", varint(LIMITS["side"])),
    Field("width", varint(LIMITS["side"])),
    Field("num_classes", varint(LIMITS["classes"])),
    Field("class_names", repeated(text(), "num_classes")),
    Field("samples_per_class", repeated(varint(LIMITS["per_class"]), "num_classes")),
    Field("mean", repeated(F32, "channels")),
    Field("std", repeated(F32, "channels")),
    Field("decoder", text(64), kinds=LATENT),
    Field("arm_context", varint(64), kinds=LATENT),
    Field("arm_hidden", varint(LIMITS["hidden"]), kinds=LATENT),
    Field("levels", varint(LIMITS["levels"]), kinds=LATENT),
    Field("channels_per_level", varint(LIMITS["channels"]), kinds=LATENT),
    Field("k", varint(LIMITS["k"]), kinds=LATENT),
    Field("gain", F32, kinds=LATENT),
    Field("shared_decoder", varint(1), since=2, kinds=LATENT),
    Field("steps", counted(counted(svarint(64), 8), LIMITS["classes"]), kinds=LATENT),
    Field("meta", mapping(LIMITS["meta"])),
)


def fields_for(version: int, kind: Kind) -> list[Field]:
    return [f for f in HEADER_FIELDS if f.since <= version and kind in f.kinds]


# ---------------------------------------------------------------------------------- header

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
    version: int = FORMAT_VERSION
    pixel_kind: Kind = Kind.PIXELS  # the kind of a file without latents

    @property
    def kind(self) -> Kind:
        return Kind.LATENT if self.latent is not None else self.pixel_kind

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def num_images(self) -> int:
        return sum(self.samples_per_class)

    def values(self) -> dict:
        out = {"channels": self.channels, "height": self.height, "width": self.width,
               "num_classes": self.num_classes, "class_names": self.class_names,
               "samples_per_class": self.samples_per_class, "mean": self.mean, "std": self.std,
               "meta": self.meta}
        if self.latent is not None:
            lat = self.latent
            out.update(decoder=lat.decoder, arm_context=lat.arm_context,
                       arm_hidden=lat.arm_hidden, levels=lat.levels,
                       channels_per_level=lat.channels_per_level, k=lat.k, gain=lat.gain,
                       shared_decoder=int(self.shared_decoder), steps=lat.steps)
        return out

    @classmethod
    def from_values(cls, v: dict, kind: Kind, version: int) -> "Header":
        latent = None
        if kind == Kind.LATENT:
            latent = LatentHeader(v["decoder"], v["arm_context"], v["arm_hidden"], v["levels"],
                                  v["channels_per_level"], v["gain"], v["k"], v["steps"])
        return cls(v["channels"], v["height"], v["width"], v["class_names"],
                   v["samples_per_class"], v["mean"], v["std"],
                   bool(v.get("shared_decoder", 0)), latent, v["meta"], version,
                   Kind.PIXELS if kind == Kind.LATENT else kind)


def _kind_word(h: Header, version: int) -> int:
    if version == 1 and h.kind == Kind.FLOAT_PIXELS:
        raise ValueError("format version 1 cannot hold float pixels")
    if version == 1:
        return (V1_FLAG_LATENT if h.latent else 0) | (V1_FLAG_SHARED_DECODER
                                                      if h.shared_decoder else 0)
    return int(h.kind)


def write_header(h: Header, version: int = FORMAT_VERSION) -> bytes:
    body = Writer()
    values = h.values()
    for f in fields_for(version, h.kind):
        f.wire.write(body, values[f.name])
    payload = body.getvalue()
    head = Writer()
    head.raw(MAGIC)
    head.u16(version)
    head.u16(_kind_word(h, version))
    head.u32(len(payload))
    head.raw(payload)
    data = head.getvalue()
    return data + zlib.crc32(data).to_bytes(4, "little")


def read_header(reader: Reader) -> Header:
    start = reader.pos
    if reader.remaining == 0:
        raise FormatError("empty file: not a .ddz file")
    if reader.take(min(4, reader.remaining)) != MAGIC:
        raise FormatError("not a .ddz file (bad magic bytes)")
    version = reader.u16()
    if version > FORMAT_VERSION:
        raise FormatError(f"made by a newer ddcodec (format version {version}; this one reads "
                          f"up to {FORMAT_VERSION}): upgrade ddcodec")
    if version not in READABLE_VERSIONS:
        raise FormatError(f"unsupported format version {version}")
    word = reader.u16()
    length = reader.u32()
    body = Reader(reader.take(length), "header")
    crc = reader.u32()
    if zlib.crc32(bytes(reader.data[start:reader.pos - 4])) != crc:
        raise FormatError("header checksum mismatch: the file is corrupt")
    kind, extra = _kind_from_word(word, version)
    try:
        values: dict = {}
        for f in fields_for(version, kind):
            values[f.name] = f.wire.read(body, values)
    except (ValueError, OverflowError) as exc:
        raise FormatError(f"corrupt header ({exc})") from exc
    if body.remaining:
        raise FormatError("corrupt header: unexpected bytes at its end")
    values.update(extra)
    header = Header.from_values(values, kind, version)
    _check(header)
    return header


def _kind_from_word(word: int, version: int) -> tuple[Kind, dict]:
    if version == 1:
        if word & ~(V1_FLAG_LATENT | V1_FLAG_SHARED_DECODER):
            raise FormatError(f"uses features this ddcodec does not know (flags {word:#x}): "
                              "upgrade ddcodec")
        kind = Kind.LATENT if word & V1_FLAG_LATENT else Kind.PIXELS
        return kind, {"shared_decoder": int(bool(word & V1_FLAG_SHARED_DECODER))}
    try:
        return Kind(word), {}
    except ValueError:
        raise FormatError(f"holds a kind of set this ddcodec does not know (kind {word}; "
                          f"reader format version {FORMAT_VERSION}): upgrade ddcodec") from None


def _check(h: Header) -> None:
    """What the wire types cannot check alone."""
    if min(h.channels, h.height, h.width, h.num_classes) < 1:
        raise FormatError("corrupt header: zero-sized images or no classes")
    if h.num_images < 1:
        raise FormatError("corrupt header: no images")
    lat = h.latent
    if lat is None:
        return
    if lat.levels < 1 or lat.channels_per_level < 1 or lat.k < 1:
        raise FormatError("corrupt header: bad latent layout")
    if any(not STEP_RANGE[0] <= s <= STEP_RANGE[1] for row in lat.steps for s in row):
        raise FormatError("corrupt header: quantisation step out of range")


# -------------------------------------------------------------------------------- sections

def write_section(tag: int, data: bytes) -> bytes:
    w = Writer()
    w.u8(tag)
    w.u32(len(data))
    w.raw(data)
    return w.getvalue()


@dataclass(frozen=True)
class Section:
    tag: int
    data: bytes

    @property
    def ancillary(self) -> bool:
        return bool(self.tag & ANCILLARY)


def read_sections(reader: Reader) -> tuple[list[Section], int]:
    """Every section up to the end record, in file order; returns them and the values CRC.
    The file CRC is checked here (it covers everything before the end record)."""
    sections: list[Section] = []
    seen = set()
    while True:
        if reader.remaining == 0:
            raise FormatError("truncated file: the end record is missing")
        tag_pos = reader.pos
        tag = reader.u8()
        length = reader.u32()
        if tag == SECTION_END:
            if length != 8:
                raise FormatError("corrupt end record")
            file_crc, values_crc = reader.u32(), reader.u32()
            if zlib.crc32(bytes(reader.data[:tag_pos])) != file_crc:
                raise FormatError("payload checksum mismatch: the file is corrupt")
            if reader.remaining:
                raise FormatError(f"{reader.remaining} unexpected bytes after the end record")
            return sections, values_crc
        if tag in seen:
            raise FormatError(f"section {tag:#04x} appears twice")
        seen.add(tag)
        sections.append(Section(tag, reader.take(length)))


def end_record(data_before: bytes, values_crc: int) -> bytes:
    w = Writer()
    w.u8(SECTION_END)
    w.u32(8)
    w.u32(zlib.crc32(data_before))
    w.u32(values_crc)
    return w.getvalue()
