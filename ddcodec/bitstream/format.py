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

from ddcodec import limits
from ddcodec.coding.bytesio import FormatError, Reader, Writer
from ddcodec.fixedpoint import STEP_RANGE
from ddcodec.errors import LimitError

MAGIC = b"DDZ\x1a"
# 3: the values checksum also covers the header and every soft-label parameter (2 did not:
# a resealed header could change class names, hard labels or normalisation unnoticed)
FORMAT_VERSION = 3
READABLE_VERSIONS = (1, 2, 3)
ANCILLARY = 0x80  # tag bit: a reader may skip this section if it does not know it
SECTION_END = 0
HEADER_PREFIX = 12  # magic, version, kind word, body length: the bytes before the body

LIMITS = limits.HEADER


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


def write_header(h: Header, version: int = FORMAT_VERSION, check: bool = True) -> bytes:
    """The header's bytes; refuses (LimitError) a header its reader would refuse, unless not
    `check` (the fuzzer writes hostile headers on purpose)."""
    if check:
        validate(h)
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


def header_digest(header_bytes: bytes, version: int) -> int:
    """Where the values CRC starts. Version 3 chains it from the header's version, kind and
    body, so a header changed and resealed (class names, hard labels, normalisation, metadata)
    fails the values checksum too; versions 1 and 2 start from 0."""
    return zlib.crc32(header_bytes[4:-4]) if version >= 3 else 0


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
    try:
        validate(header)
    except LimitError as exc:
        raise FormatError(f"corrupt header: {exc}") from None
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


def _positive_float(text: str) -> None:
    limits.finite_f32("", _number(text), positive=True)


def _non_negative_float(text: str) -> None:
    limits.finite_f32("", _number(text), low=0.0)


def _psnr(text: str) -> None:
    if _number(text) != float("inf"):
        limits.finite_f32("", _number(text))


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise LimitError("is not a number") from None


def _size(text: str) -> None:
    parts = text.split("x")
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        raise LimitError("is not HxW")
    for p in parts:
        limits.within("", int(p), 1, LIMITS["side"])


def _one_of(*choices: str) -> Callable[[str], None]:
    def check(text: str) -> None:
        if text not in choices:
            raise LimitError(f"is not {' or '.join(choices)}")
    return check


# Metadata that changes what is decoded or how `measure` trains, and how its value must read;
# other keys are free text (method, data, ...).
META_VALUES: dict[str, Callable[[str], None]] = {
    "syn_lr": _positive_float, "zca_eps": _positive_float, "resize": _size, "pixels": _one_of("8bit"),
    "max_error": _non_negative_float, "mean_error": _non_negative_float, "psnr_db": _psnr,
}


def validate(h: Header) -> None:
    """Everything a header must satisfy beyond its wire types; the writer and the reader both
    call it (LimitError names the field), so `encode` cannot write a header `decode` refuses."""
    within = limits.within
    within("channels", h.channels, 1, LIMITS["channels"])
    within("height", h.height, 1, LIMITS["side"])
    within("width", h.width, 1, LIMITS["side"])
    within("classes", h.num_classes, 1, LIMITS["classes"])
    if len(h.samples_per_class) != h.num_classes:
        raise LimitError("one sample count per class is needed")
    for count in h.samples_per_class:
        within("samples per class", count, 0, LIMITS["per_class"])
    if h.num_images < 1:
        raise LimitError("no images")
    for name in h.class_names:
        within("class name length (UTF-8 bytes)", len(name.encode("utf-8")), 0, LIMITS["text"])
    for what, values in (("mean", h.mean), ("std", h.std)):
        if len(values) != h.channels:
            raise LimitError(f"one {what} per channel is needed")
        for v in values:
            limits.finite_f32(what, v, -limits.FLOAT_MAGNITUDE, limits.FLOAT_MAGNITUDE,
                              positive=what == "std")
    within("metadata entries", len(h.meta), 0, LIMITS["meta"])
    for key, value in h.meta.items():
        within("metadata key length", len(key.encode("utf-8")), 0, LIMITS["meta_key"])
        within(f"metadata {key!r} length", len(value.encode("utf-8")), 0, LIMITS["text"])
        if key in META_VALUES:
            try:
                META_VALUES[key](value)
            except LimitError as exc:
                raise LimitError(f"metadata {key} {value!r}: {str(exc).strip()}") from None
    lat = h.latent
    if lat is None:
        return
    within("decoder name length", len(lat.decoder.encode("utf-8")), 0, LIMITS["decoder_name"])
    within("ARM context", lat.arm_context, 0, 64)
    within("ARM hidden layers", lat.arm_hidden, 0, LIMITS["hidden"])
    within("latent levels", lat.levels, 1, LIMITS["levels"])
    within("latent channels per level", lat.channels_per_level, 1, LIMITS["channels"])
    within("latent range k", lat.k, 1, LIMITS["k"])
    limits.finite_f32("gain", lat.gain, -limits.FLOAT_MAGNITUDE, limits.FLOAT_MAGNITUDE)
    within("decoders", len(lat.steps), 1, LIMITS["classes"])
    for row in lat.steps:
        within("steps per decoder", len(row), 0, 8)
        for step in row:
            within("quantisation step exponent", step, *STEP_RANGE)


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
