"""Encode a distilled set to .ddz bytes and decode them back: one loop over the registered
section parts in each direction (`ddcodec.bitstream.sections`).

Encoding a latent set writes the weights, reads them back from those very bytes, builds the
integer ARM from them and codes the latents through the decoder's own loop; finally it decodes
the file's sections (not the images) and checks it got its latents back. Decoding checks that
the file is plausible for its size before it allocates anything, then runs the parts, checks
the values CRC and only then makes images (the float synthesis on the CPU for latent sets:
latents and weights are bit-exact everywhere, pixels within one 8-bit level) and labels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from ddcodec.bitstream import format as fmt
from ddcodec.coding.bytesio import FormatError, Reader
from ddcodec.bitstream.float_coding import narrowest_width
from ddcodec.bitstream.format import Kind
from ddcodec.bitstream.geometry import geometry_from_header, latent_header
from ddcodec.codec.geometry import LatentGeometry
from ddcodec.codec.decoding import synthesis_chunk, synthesis_peak, synthesize  # noqa: F401
from ddcodec.bitstream.sections import REGISTRY, CodingState, parts_for
from ddcodec.data.datasets import Normalization
from ddcodec.sets.distributional import PriorSampler
from ddcodec.errors import LimitError
from ddcodec.labels.soft import SoftLabels
from ddcodec.names import PIXEL_MODES
from ddcodec.sets.setfile import DistilledSet

FRAMING_BYTES = 5  # tag + length of each section and of the end record
END_CHECKSUM_BYTES = 8  # the end record's two CRC32s
# Decoding never needs more memory than MEMORY_PER_FILE_BYTE bytes per byte of file beyond a
# MEMORY_FLOOR; a header that announces more is refused before anything is allocated.
MEMORY_PER_FILE_BYTE = 2048
MEMORY_FLOOR = 256 << 20
# Per decoder weight: its int32, the integer ARM's int64, float64 dequantised, float32 stacked
# (measured: 14 bytes each for 100 zero decoders of 0.5 M weights; this bounds it from above)
WEIGHT_BYTES = 32


@dataclass
class Decoded:
    header: fmt.Header
    images: torch.Tensor  # uint8 N x C x H x W; float pixel files: the stored normalised floats
    labels: torch.Tensor  # int64 N
    latents: list[np.ndarray] | None  # per level: G x planes x h x w
    section_bytes: dict[str, int] = field(default_factory=dict)
    estimated_bits: dict[str, float] = field(default_factory=dict)
    file_bytes: int = 0
    skipped_sections: list[int] = field(default_factory=list)  # unknown ancillary tags
    soft_labels: SoftLabels | None = None
    sampler: PriorSampler | None = None  # distributional sets: draws each epoch's samples
    values_crc: int = 0  # the values CRC of what was decoded (equal to the file's when checked)
    fkd: object = None  # ddcodec.sets.fkd.FkdViews of labels on an FKD relabelling

    @property
    def normalization(self) -> Normalization:
        return Normalization(tuple(self.header.mean), tuple(self.header.std))

    @property
    def exact_floats(self) -> bool:
        return self.header.kind == Kind.FLOAT_PIXELS

    def to_set(self) -> DistilledSet:
        h = self.header
        provenance = {"method": h.meta.get("method", "unknown"), "data": h.meta.get("data"),
                      "decoded_from_ddz": True}
        for key in ("syn_lr", "zca_eps"):  # numbers the header's validation has checked
            if key in h.meta:
                provenance[key] = float(h.meta[key])
        if "resize" in h.meta:
            try:
                provenance["resize"] = [int(v) for v in h.meta["resize"].split("x")]
            except ValueError:
                raise FormatError(f"corrupt header: resize {h.meta['resize']!r}") from None
        images = (self.images.to(torch.float32) if self.exact_floats
                  else self.normalization.normalize(self.images))
        return DistilledSet(images, self.labels, list(h.class_names), self.normalization,
                            provenance, soft_labels=self.soft_labels, sampler=self.sampler,
                            fkd=self.fkd)

    def images_uint8(self) -> torch.Tensor:
        """The images as 8-bit pixels (for PNG exports and pictures; float pixel files are
        rounded here, which loses their exactness)."""
        if not self.exact_floats:
            return self.images
        unit = self.normalization.denormalize(self.images.to(torch.float32))
        return unit.mul(255).round().clamp(0, 255).to(torch.uint8)


# ----------------------------------------------------------------------------------- encoding

def encode_set(distilled: DistilledSet, version: int = fmt.FORMAT_VERSION,
               pixels: str = "lossless", streams: int = 1,
               check: bool = True) -> tuple[bytes, dict]:
    """Return the .ddz bytes and a report of estimated bits per part. `version=1` writes what
    ddcodec 0.1 wrote (for compatibility tests). `pixels` says how a pixel set's values are
    coded (see `plan_pixels`); latent sets ignore it. `streams`: a latent set's latents in this
    many independent substreams (decodable by as many processes; 1: one stream). `check`: decode
    the file's sections and compare the latents (the closed loop, about half an encode); only
    a caller that wants the size alone, as rate control's trial encodes, leaves it out."""
    counts = [int((distilled.labels == c).sum()) for c in range(distilled.num_classes)]
    order = torch.argsort(distilled.labels, stable=True)
    if distilled.labels.ndim != 1 or not torch.equal(order, torch.arange(len(order))):
        raise ValueError("labels must be hard and class-ordered to be coded")
    if version == 1 and distilled.soft_labels is not None:
        raise ValueError("format version 1 cannot hold soft labels")
    c, hgt, wid = distilled.image_shape
    header = fmt.Header(c, hgt, wid, list(distilled.class_names), counts,
                        list(distilled.normalization.mean), list(distilled.normalization.std),
                        meta=_meta(distilled), version=version)
    distilled.check_fkd()
    state = CodingState(header, soft_labels=distilled.soft_labels, fkd=distilled.fkd,
                        streams=streams)
    payload = distilled.codec
    if streams != 1 and (payload is None or version < 2):
        raise ValueError("latent substreams (--streams) need a latent set and format version 2")
    if payload is None:
        plan = plan_pixels(distilled, pixels)
        header.pixel_kind = plan.kind
        header.meta.update(plan.meta)
        if plan.kind == Kind.FLOAT_PIXELS:
            state.floats = plan.values
        else:
            state.pixels = plan.values
    else:
        header.shared_decoder = payload.config.shared_decoder
        header.latent = latent_header(payload)
        state.payload = payload
    head = fmt.write_header(header, version)
    body, bits = [head], {"header": 8 * len(head)}
    values_crc = fmt.header_digest(head, version)
    for part in parts_for(header.kind):
        if not part.present(state):
            continue
        data, part_bits = part.encode(state)
        body.append(fmt.write_section(part.tag, data))
        bits[part.name] = part_bits
        if _checksummed(part, version):
            values_crc = part.digest(state, values_crc)
    joined = b"".join(body)
    data = joined + fmt.end_record(joined, values_crc)
    if payload is not None and check:
        decoded = decode_bytes(data, images=False, bits=False, check_ends=False)
        if any(not np.array_equal(a, b) for a, b in zip(decoded.latents, state.latents)):
            raise RuntimeError("internal error: the decoder did not reproduce the encoder's "
                               "latents")
    return data, bits


@dataclass(frozen=True)
class PixelPlan:
    """How a pixel set's values go into the file, and what that changes."""

    kind: Kind
    values: np.ndarray  # uint8 (8-bit pixels) or float16/float32 (normalised values)
    meta: dict[str, str]  # recorded in the header: a declared-lossy coding and its error


def plan_pixels(distilled: DistilledSet, mode: str = "lossless") -> PixelPlan:
    """`lossless`: a set on the 8-bit grid (every value is normalize(some uint8), bit for bit)
    is coded as 8-bit pixels; any other set as its float values, exactly (float16 when that
    holds them, else float32). `8bit`: rounded and clipped to 8-bit pixels, declared lossy; the
    header records the maximum and mean error (normalised units) and the PSNR (pixels in
    [0, 1])."""
    if mode not in PIXEL_MODES:
        raise ValueError(f"unknown pixel coding {mode!r}; choose {', '.join(PIXEL_MODES)}")
    norm, images = distilled.normalization, distilled.images.to(torch.float32)
    unit = norm.denormalize(images)
    grid = unit.mul(255).round().clamp(0, 255).to(torch.uint8)
    back = norm.normalize(grid)
    if torch.equal(back.view(torch.int32), images.view(torch.int32)):
        return PixelPlan(Kind.PIXELS, grid.numpy(), {})
    if mode == "lossless":
        values = images.numpy()
        if narrowest_width(values) == 16:
            values = values.astype(np.float16)
        return PixelPlan(Kind.FLOAT_PIXELS, values, {})
    error = (back - images).abs()
    mse = float(((grid.to(torch.float64) / 255 - unit.to(torch.float64)) ** 2).mean())
    psnr = 10 * math.log10(1 / mse) if mse > 0 else math.inf
    return PixelPlan(Kind.PIXELS, grid.numpy(), {
        "pixels": "8bit", "max_error": f"{float(error.max()):.6g}",
        "mean_error": f"{float(error.mean()):.6g}", "psnr_db": f"{psnr:.4f}"})


def pixel_coding(header: fmt.Header) -> dict:
    """What a file says about how its pixels were coded (for `encode` and `info`)."""
    if header.kind == Kind.LATENT:
        return {"coding": "latent", "lossless": None}
    if header.kind == Kind.FLOAT_PIXELS:
        return {"coding": "float, exact", "lossless": True}
    if header.meta.get("pixels") != "8bit":
        return {"coding": "8-bit grid, exact", "lossless": True}
    report = {"coding": "8-bit, declared lossy", "lossless": False}
    for key in ("max_error", "mean_error", "psnr_db"):
        try:
            report[key] = float(header.meta[key])
        except (KeyError, ValueError):
            report[key] = None
    return report


def _checksummed(part, version: int) -> bool:
    """Critical sections' decoded values are in the end record's values CRC (version 1: the
    latents only). Ancillary ones are not: a reader that skips them must still match it."""
    return not part.ancillary and (version >= 2 or part.in_v1_checksum)


def _meta(distilled: DistilledSet) -> dict[str, str]:
    meta = {k: str(distilled.provenance[k]) for k in ("method", "data")
            if distilled.provenance.get(k) is not None}
    if distilled.provenance.get("syn_lr") is not None:
        try:
            meta["syn_lr"] = str(float(distilled.provenance["syn_lr"]))
        except (TypeError, ValueError):
            raise LimitError(f"provenance syn_lr {distilled.provenance['syn_lr']!r} is not a "
                             "number") from None
    if distilled.zca_eps is not None:  # the whitening is rebuilt from `data` with this eps
        if "data" not in meta:
            raise LimitError("a ZCA-whitened set must name its data (provenance data): the "
                             "whitening is rebuilt from that data's training images")
        meta["zca_eps"] = repr(distilled.zca_eps)
    resize = distilled.provenance.get("resize")
    if resize:  # the data's images were resized: measure must load them the same way
        meta["resize"] = "x".join(str(int(v)) for v in resize)
    return meta


# ----------------------------------------------------------------------------------- decoding

def decoded_memory(header: fmt.Header, geometry: LatentGeometry | None = None) -> int:
    """Bytes the decoder will hold at its peak for this header (an upper estimate)."""
    n, c = header.num_images, header.channels
    pixels = n * c * header.height * header.width
    fixed = pixels + 8 * n  # images and labels
    if header.kind == Kind.PIXELS:
        return fixed + 32 * pixels  # int64 work buffer, symbols and their scales for the check
    if header.kind == Kind.FLOAT_PIXELS:  # float values, int64 work buffers, raw bits unpacked
        return fixed + 64 * pixels
    geometry = geometry or geometry_from_header(header)
    # int64 grids, their padded buffer, and symbols with mu and b kept for the exactness check
    latents = 48 * geometry.latent_values
    weights = WEIGHT_BYTES * sum(geometry.weight_counts)
    synthesis_at_once = geometry.groups * synthesis_chunk(geometry) * synthesis_peak(geometry)
    return fixed + latents + weights + synthesis_at_once


def memory_bound(file_bytes: int) -> int:
    """The most memory decoding a file of this size may take (docs/FORMAT.md)."""
    return MEMORY_FLOOR + MEMORY_PER_FILE_BYTE * file_bytes


def check_plausible(header: fmt.Header, file_bytes: int,
                    geometry: LatentGeometry | None = None) -> None:
    """Refuse a header that announces far more than the file could hold, before allocating."""
    need = decoded_memory(header, geometry)
    if need > memory_bound(file_bytes):
        what = (f"{header.num_images:,} images of "
                f"{header.channels}x{header.height}x{header.width}")
        if header.kind == Kind.LATENT:
            geometry = geometry or geometry_from_header(header)
            weights = sum(geometry.weight_counts) // geometry.groups
            what += f" and {geometry.groups:,} decoders of {weights:,} weights"
        raise FormatError(f"corrupt header: {what} (about {need / 2 ** 20:,.0f} MiB to decode) "
                          f"are implausible for a file of {file_bytes:,} bytes")


def decode_bytes(data: bytes, images: bool = True, bits: bool = True,
                 workers: int = 1, check_ends: bool = True,
                 check_values: bool = True, device: str | torch.device = "cpu") -> Decoded:
    """Every value of a file, checked; its images unless not `images`; the ideal bits of each
    section (what `info` and `measure` report) unless not `bits`, which leaves
    `estimated_bits` empty and saves about a tenth of a latent file's decode. `workers`:
    processes that decode a file's latent substreams side by side (files without substreams
    decode in this process). `check_ends`: only the encoder's closed loop, which compares every
    latent with those it encoded, leaves out the proof that the latent stream has no spare
    words. `check_values`: only tools that reseal a file on purpose (the fuzzer's "all
    checksums recomputed" mode) leave out the comparison with the end record's values CRC.
    `device`: where a latent file's float synthesis runs (the CPU's images are the reference)."""
    reader = Reader(data, "file")
    header = fmt.read_header(reader)
    header_bytes = reader.pos
    state = CodingState(header, want_bits=bits, workers=workers,  # geometry parsed once
                        check_ends=check_ends)
    geometry = state.geometry if header.kind == Kind.LATENT else None
    check_plausible(header, len(data), geometry)
    state.memory_left = memory_bound(len(data)) - decoded_memory(header, geometry)
    sections, values_crc = fmt.read_sections(reader)
    found, skipped, last = {}, [], -1
    parts = parts_for(header.kind)
    for section in sections:
        part = REGISTRY.get(section.tag)
        if part is None or header.kind not in part.kinds:
            if section.ancillary:
                skipped.append(section.tag)
                continue
            what = "unknown critical" if part is None else f"{header.kind.name.lower()} file's"
            raise FormatError(f"{what} section {section.tag:#04x} (this reader: format version "
                              f"{fmt.FORMAT_VERSION}): a newer ddcodec or a corrupt file")
        position = parts.index(part)
        if position < last:  # the encoder writes the registry's order; a reader needs no other
            raise FormatError(f"corrupt file: the {part.name} section is out of order")
        last = position
        found[section.tag] = section.data
    for part in parts:
        filled = [p for p in parts if p.tag in found and (p is part or (
            part.slot is not None and p.slot == part.slot))]
        if part.required and not filled:
            raise FormatError(f"corrupt file: the {part.name} section is missing")
        if len(filled) > 1:
            raise FormatError(f"corrupt file: both a {filled[0].name} and a {filled[1].name} "
                              "section")
    estimate = {"header": 8.0 * header_bytes,
                "framing": 8.0 * (FRAMING_BYTES * (len(sections) + 1) + END_CHECKSUM_BYTES)}
    crc = fmt.header_digest(data[:header_bytes], header.version)
    for part in parts:
        if part.tag not in found:
            continue
        estimate[part.name] = part.decode(found[part.tag], state)
        if _checksummed(part, header.version):
            crc = part.digest(state, crc)
    if check_values and crc != values_crc:
        raise FormatError("values checksum mismatch: the file is corrupt")
    on_fkd = state.soft_labels is not None and state.soft_labels.fkd
    if on_fkd != (state.fkd is not None) or (
            on_fkd and state.soft_labels.epochs != state.fkd.epochs):
        raise FormatError("corrupt file: FKD views and the soft labels made on them must come "
                          "together, over the same epochs")
    if not bits:
        estimate = {}
    sizes = {"header": header_bytes,
             **{REGISTRY[t].name if t in REGISTRY else f"{t:#04x}": len(s.data)
                for s in sections for t in [s.tag]}}
    pictures = _images(state, device) if images else torch.empty(0, dtype=torch.uint8)
    labels = torch.arange(header.num_classes).repeat_interleave(
        torch.tensor(header.samples_per_class))
    sampler = None
    if "scales" in state.extras:
        sampler = PriorSampler(state.geometry, header.latent.steps, state.weight_ints,
                               state.latents, state.extras["scales"])
    return Decoded(header, pictures, labels, state.latents, sizes, estimate,
                   file_bytes=len(data), skipped_sections=skipped,
                   soft_labels=state.soft_labels, sampler=sampler, values_crc=crc,
                   fkd=state.fkd)


def _images(state: CodingState, device: str | torch.device) -> torch.Tensor:
    if state.header.kind == Kind.PIXELS:
        return torch.from_numpy(state.pixels)
    if state.header.kind == Kind.FLOAT_PIXELS:
        return torch.from_numpy(np.ascontiguousarray(state.floats))
    return synthesize(state.geometry, state.header.latent.steps, state.weight_ints,
                      state.latents, device)
