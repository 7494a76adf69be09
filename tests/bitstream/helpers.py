"""Shared helpers for the bitstream tests: the golden files and byte-level surgery on them."""

from __future__ import annotations

import zlib
from dataclasses import replace
from pathlib import Path

from ddcodec.bitstream import format as fmt
from ddcodec.coding.bytesio import Reader

DATA = Path(__file__).parent.parent / "fixtures"


def golden_v2() -> bytes:
    """What ddcodec wrote as format version 2 (still read; its values CRC leaves out the
    header)."""
    return (DATA / "golden_v2.ddz").read_bytes()


def golden_v3() -> bytes:
    """The golden set as `encode` writes it now (format version 3)."""
    return (DATA / "golden_v3.ddz").read_bytes()


def split(data: bytes) -> tuple[fmt.Header, bytes, list[fmt.Section], int]:
    """(header, header bytes, sections, values CRC) of a valid file."""
    reader = Reader(data)
    header = fmt.read_header(reader)
    head = data[:reader.pos]
    sections, values_crc = fmt.read_sections(reader)
    return header, head, sections, values_crc


def assemble(header_bytes: bytes, sections: list[tuple[int, bytes]], values_crc: int) -> bytes:
    """A file from parts, with a correct file CRC (a 'resealed' file)."""
    body = header_bytes + b"".join(fmt.write_section(t, d) for t, d in sections)
    return body + fmt.end_record(body, values_crc)


def with_header(data: bytes, reseal_values: bool = False, **changes) -> bytes:
    """The same sections under a changed header, with the header and file CRCs resealed (and
    the values CRC too with `reseal_values`: a forged, valid file)."""
    from ddcodec.audit.mutations import reseal_all

    header, _, sections, values_crc = split(data)
    latent = changes.pop("latent", None)
    header = replace(header, **changes)
    if latent is not None:
        header.latent = latent
    out = assemble(fmt.write_header(header, header.version, check=False),
                   [(s.tag, s.data) for s in sections], values_crc)
    return reseal_all(out) if reseal_values else out


def reseal_header(head: bytes) -> bytes:
    end = len(head) - 4
    return head[:end] + zlib.crc32(head[:end]).to_bytes(4, "little")



def float_set():
    """The golden set off the 8-bit grid: its file holds exact float32 values."""
    from ddcodec.audit.corpus import off_grid
    from ddcodec.sets.setfile import load_set

    return off_grid(load_set(DATA / "golden_set.pt"))
