"""The registry of section codecs: each kind of section is one registered part that encodes and
decodes itself, reports its bits and digests the values it decoded.

The encoder and the decoder are loops over `parts_for(kind)`, in registration order (which is
also the order of the sections in the file). A part reads and writes the shared `CodingState`:
the weights part leaves the decoded integers and the integer ARM there, the latents part reads
the ARM and leaves the grids, the pixels part leaves the images. Adding a kind of section is one
module with one `register(...)` call; see tests/bitstream/test_sections.py for an ancillary one.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import torch

from ddcodec.labels.rungs import rung
from ddcodec.bitstream import armint
from ddcodec.bitstream.armint import IntegerARM
from ddcodec.coding.bytesio import FormatError, Reader, Writer
from ddcodec.coding.entropy import Decoder, Encoder
from ddcodec.fixedpoint import ARM_BIAS_STEP_MIN, ARM_WEIGHT_STEP_MIN
from ddcodec.bitstream.fkd_coding import decode_fkd, digest_fkd, encode_fkd
from ddcodec.bitstream.float_coding import decode_float_pixels, encode_float_pixels
from ddcodec.bitstream.format import ANCILLARY, Header, Kind
from ddcodec.bitstream.geometry import geometry_from_header
from ddcodec.codec.geometry import LatentGeometry
from ddcodec.bitstream.label_coding import decode_labels, encode_labels, params_bytes
from ddcodec.bitstream.latent_coding import code_latents
from ddcodec.bitstream.pixel_coding import decode_pixels, encode_pixels
from ddcodec.coding.weight_coding import decode_weights, encode_weights
from ddcodec.codec.arm import causal_offsets
from ddcodec.errors import DDCodecError
from ddcodec.sets.distributional import CODE_MAX, MAX_SAMPLES, Scales


@dataclass
class CodingState:
    """What the parts share while one file is encoded or decoded."""

    header: Header
    payload: object = None  # encoding a latent set: its LatentPayload
    pixels: np.ndarray | None = None  # uint8 N x C x H x W (pixel sets)
    floats: np.ndarray | None = None  # float16/float32 N x C x H x W (float pixel sets)
    soft_labels: object = None  # ddcodec.labels.soft.SoftLabels, when the set has them
    fkd: object = None  # ddcodec.sets.fkd.FkdViews, when the labels are on an FKD relabelling's
    memory_left: int | None = None  # decoding: bytes a section may still allocate
    want_bits: bool = True  # decoding: whether to work out the ideal bits (for reports)
    # decoding: prove the latent stream ends where its data does (a re-encode, ~12 % of a
    # decode); the encoder's closed loop skips it, its bytes being those very symbols' encode
    check_ends: bool = True
    streams: int = 1  # encoding a latent set: independent latent substreams (1: one stream)
    workers: int = 1  # decoding: processes that decode latent substreams side by side
    weight_ints: list[np.ndarray] | None = None
    arm: IntegerARM | None = None
    latents: list[np.ndarray] | None = None  # per level: G x planes x h x w, int64
    extras: dict = field(default_factory=dict)  # values of parts that want to keep something

    @cached_property
    def geometry(self) -> LatentGeometry:
        return geometry_from_header(self.header)


class SectionCodec:
    """One kind of section. Subclasses set the class attributes and the four methods."""

    tag: int  # low 7 bits: the section's number; ANCILLARY set: skippable by older readers
    name: str
    kinds: tuple[Kind, ...]
    required: bool = True  # a file of one of `kinds` without it (or its slot's) is corrupt
    slot: str | None = None  # sections that are alternatives: a file holds one of them
    in_v1_checksum: bool = False  # version 1's end record covered only the latents

    @property
    def ancillary(self) -> bool:
        return bool(self.tag & ANCILLARY)

    def present(self, state: CodingState) -> bool:
        """Whether the encoder writes this section for the set being encoded."""
        return True

    def encode(self, state: CodingState) -> tuple[bytes, float]:
        """The section's bytes and their ideal bits; leaves in `state` what decoding would."""
        raise NotImplementedError

    def decode(self, data: bytes, state: CodingState) -> float:
        """Read the section into `state`; return its ideal bits. Consume `data` exactly."""
        raise NotImplementedError

    def digest(self, state: CodingState, crc: int) -> int:
        """Extend the end record's values CRC with what this section decoded."""
        return crc


REGISTRY: dict[int, SectionCodec] = {}


def register(codec: SectionCodec) -> SectionCodec:
    if codec.tag in REGISTRY or not 0 < codec.tag < 256:
        raise ValueError(f"section tag {codec.tag:#04x} is taken or out of range")
    REGISTRY[codec.tag] = codec
    return codec


def unregister(tag: int) -> None:
    REGISTRY.pop(tag, None)


def parts_for(kind: Kind) -> list[SectionCodec]:
    return [c for c in REGISTRY.values() if kind in c.kinds]


# ------------------------------------------------------------------------------------ parts

class WeightsSection(SectionCodec):
    """Quantised decoder and ARM integers of every decoder; their steps travel in the header."""

    tag, name, kinds = 3, "weights", (Kind.LATENT,)

    def encode(self, state: CodingState) -> tuple[bytes, float]:
        ints = [q.q.numpy() for q in state.payload.weight_groups()]
        data, bits = encode_weights(ints)
        self.decode(data, state)  # the latents are coded with the ARM the decoder will build
        return data, bits

    def decode(self, data: bytes, state: CodingState) -> float:
        geometry = state.geometry
        ints, bits = decode_weights(data, geometry.weight_counts, state.want_bits)
        state.weight_ints = ints
        state.arm = integer_arm(geometry, ints, state.header.latent.steps)
        return bits

    def digest(self, state: CodingState, crc: int) -> int:
        steps = [s for row in state.header.latent.steps for s in row]
        crc = zlib.crc32(np.asarray(steps, dtype="<i1").tobytes(), crc)
        for q in state.weight_ints:
            crc = zlib.crc32(np.asarray(q, dtype="<i4").tobytes(), crc)
        return crc


class LatentsSection(SectionCodec):
    """Every latent grid, level by level in wavefront order, under the integer ARM."""

    tag, name, kinds = 4, "latents", (Kind.LATENT,)
    in_v1_checksum = True
    slot = "latents"

    def present(self, state: CodingState) -> bool:
        return state.streams == 1

    def _code(self, mode: str, state: CodingState, coder, latents=None):
        geometry = state.geometry
        return code_latents(mode, state.arm, causal_offsets(geometry.config.arm_context),
                            geometry.layout.grid_sizes(), geometry.groups, geometry.planes,
                            coder, latents, want_bits=state.want_bits)

    def encode(self, state: CodingState) -> tuple[bytes, float]:
        state.latents = state.payload.latent_grids()
        coder = Encoder("latents")
        _, bits = self._code("encode", state, coder, state.latents)
        return coder.to_bytes(), bits

    def decode(self, data: bytes, state: CodingState) -> float:
        coder = Decoder(data, "latent section")
        state.latents, bits = self._code("decode", state, coder)
        if state.check_ends:
            coder.finish()
        return bits

    def digest(self, state: CodingState, crc: int) -> int:
        for grid in state.latents:
            crc = zlib.crc32(grid.astype("<i2").tobytes(), crc)
        return crc


class LatentStreamsSection(LatentsSection):
    """The latents in S independent substreams, one per contiguous range of decoders, so that
    S processes can decode them side by side (constriction holds the GIL: threads cannot).
    Layout: varint S, the byte lengths of the first S - 1 streams (varints), the streams. Each
    stream codes its decoders exactly as the single stream would; the cost is each stream's
    flush word and its length."""

    tag, name = 9, "latent substreams"

    def present(self, state: CodingState) -> bool:
        return state.streams > 1

    def encode(self, state: CodingState) -> tuple[bytes, float]:
        geometry = state.geometry
        if geometry.groups == 1:
            raise ValueError("a set with one (shared) decoder has nothing to split into "
                             "substreams: leave out --streams")
        if not 1 < state.streams <= geometry.groups:
            raise ValueError(f"{state.streams} latent substreams for {geometry.groups} "
                             f"decoders: choose 2 to {geometry.groups}")
        state.latents = state.payload.latent_grids()
        head, streams, bits = Writer(), [], 0.0
        head.varint(state.streams)
        for first, last in stream_groups(geometry.groups, state.streams):
            coder = Encoder("latents")
            _, stream_bits = code_latents(
                "encode", state.arm.subset(first, last), causal_offsets(
                    geometry.config.arm_context), geometry.layout.grid_sizes(), last - first,
                geometry.planes, coder, [g[first:last] for g in state.latents])
            streams.append(coder.to_bytes())
            bits += stream_bits
        for stream in streams[:-1]:
            head.varint(len(stream))
        head_bytes = head.getvalue()
        return head_bytes + b"".join(streams), bits + 8.0 * len(head_bytes)

    def decode(self, data: bytes, state: CodingState) -> float:
        geometry = state.geometry
        reader = Reader(data, "latent substreams")
        count = reader.varint(geometry.groups)
        if count < 2:
            raise FormatError("corrupt latent substreams: fewer than 2 streams")
        lengths = [reader.varint(len(data)) for _ in range(count - 1)]
        if any(n % 4 for n in lengths) or sum(lengths) > reader.remaining:
            raise FormatError("corrupt latent substreams: stream lengths do not fit the section")
        chunks = [reader.take(n) for n in lengths] + [reader.take(reader.remaining)]
        jobs = [(state.arm.subset(first, last), geometry.config.arm_context,
                 geometry.layout.grid_sizes(), last - first, geometry.planes, chunk,
                 state.want_bits)
                for (first, last), chunk in zip(stream_groups(geometry.groups, count), chunks)]
        results = run_jobs(decode_stream, jobs, state.workers)
        state.latents = [np.concatenate([r[0][level] for r in results])
                         for level in range(geometry.layout.levels)]
        return sum(r[1] for r in results) + 8.0 * (reader.pos - sum(len(c) for c in chunks))


def stream_groups(groups: int, streams: int) -> list[tuple[int, int]]:
    """Contiguous decoder ranges [first, last) of each substream, as equal as possible."""
    edges = [round(i * groups / streams) for i in range(streams + 1)]
    return list(zip(edges[:-1], edges[1:]))


def decode_stream(job) -> tuple[list[np.ndarray], float]:
    """One substream's latents and ideal bits (a picklable job for a worker process)."""
    arm, arm_context, shapes, groups, planes, data, want_bits = job
    coder = Decoder(data, "latent substream")
    grids, bits = code_latents("decode", arm, causal_offsets(arm_context), shapes, groups,
                               planes, coder, want_bits=want_bits)
    coder.finish()
    return grids, bits


def run_jobs(function, jobs: list, workers: int) -> list:
    """function over jobs, in order; in `workers` forked processes when more than one (and the
    platform forks), else here. Each worker runs torch on one thread (as DataLoader workers
    do): a forked child must not enter the parent's thread pool."""
    import multiprocessing

    if workers <= 1 or len(jobs) <= 1 or "fork" not in multiprocessing.get_all_start_methods():
        return [function(job) for job in jobs]
    context = multiprocessing.get_context("fork")
    with context.Pool(min(workers, len(jobs)), initializer=armint.one_thread_worker) as pool:
        return pool.map(function, jobs, chunksize=1)


class PixelsSection(SectionCodec):
    """Lossless 8-bit pixels (vanilla sets)."""

    tag, name, kinds = 5, "pixels", (Kind.PIXELS,)

    def encode(self, state: CodingState) -> tuple[bytes, float]:
        return encode_pixels(state.pixels)

    def decode(self, data: bytes, state: CodingState) -> float:
        h = state.header
        state.pixels = decode_pixels(data, (h.num_images, h.channels, h.height, h.width))
        return 8.0 * len(data)

    def digest(self, state: CodingState, crc: int) -> int:
        return zlib.crc32(np.ascontiguousarray(state.pixels).tobytes(), crc)


class FloatPixelsSection(SectionCodec):
    """Float pixels, exact to the bit (sets off the 8-bit grid; ddcodec.bitstream.float_coding).
    The values are the set's normalised images as stored, float16 when that holds them."""

    tag, name, kinds = 6, "float pixels", (Kind.FLOAT_PIXELS,)

    def encode(self, state: CodingState) -> tuple[bytes, float]:
        width = 16 if state.floats.dtype == np.float16 else 32
        data = encode_float_pixels(state.floats, width)
        return data, 8.0 * len(data)

    def decode(self, data: bytes, state: CodingState) -> float:
        h = state.header
        state.floats, _ = decode_float_pixels(data, (h.num_images, h.channels, h.height,
                                                     h.width))
        return 8.0 * len(data)

    def digest(self, state: CodingState, crc: int) -> int:
        values = np.ascontiguousarray(state.floats)
        return zlib.crc32(values.astype(values.dtype.newbyteorder("<")).tobytes(), crc)


class LabelsSection(SectionCodec):
    """Soft labels, one distribution per image (ddcodec.bitstream.label_coding). Critical: a
    reader that cannot read them must not train on the hard labels instead."""

    tag, name, kinds = 7, "labels", tuple(Kind)
    required = False

    def present(self, state: CodingState) -> bool:
        return state.soft_labels is not None

    def encode(self, state: CodingState) -> tuple[bytes, float]:
        return encode_labels(state.soft_labels)

    def decode(self, data: bytes, state: CodingState) -> float:
        h = state.header
        state.soft_labels = decode_labels(data, h.num_images, h.num_classes, state.memory_left)
        return 8.0 * len(data)

    def digest(self, state: CodingState, crc: int) -> int:
        labels = state.soft_labels
        if state.header.version >= 3:  # every parameter that changes training, then values
            crc = zlib.crc32(params_bytes(labels), crc)
        parts = rung(labels.codec).digest_parts(labels, state.header.version)
        if parts is None:
            return zlib.crc32(labels.probabilities.numpy().astype("<f2").tobytes(), crc)
        for part in parts:
            crc = zlib.crc32(part, crc)
        return crc


class ScalesSection(SectionCodec):
    """A distributional set's spreads (ddcodec.sets.distributional): samples per prior and epoch, the
    seed of their noise, then per level a centre code and every prior's difference from it
    under a Laplace per level (the weights' coder). Critical: a reader that skipped it would
    train on the means alone."""

    tag, name, kinds = 8, "scales", (Kind.LATENT,)
    required = False

    def present(self, state: CodingState) -> bool:
        return state.payload is not None and state.payload.scales is not None

    def encode(self, state: CodingState) -> tuple[bytes, float]:
        scales = state.payload.scales
        codes = scales.codes.numpy().astype(np.int32)  # G x N x L
        writer = Writer()
        writer.varint(scales.samples)
        writer.varint(scales.seed)
        centres = [int(np.median(codes[:, :, level])) for level in range(codes.shape[2])]
        for centre in centres:
            writer.varint(centre)
        residuals = [codes[:, :, level].ravel() - centre for level, centre in enumerate(centres)]
        data, bits = encode_weights(residuals)
        head = writer.getvalue()
        state.extras["scales"] = scales
        return head + data, bits + 8.0 * len(head)

    def decode(self, data: bytes, state: CodingState) -> float:
        geometry = state.geometry
        groups, priors, levels = geometry.groups, geometry.per_group, geometry.layout.levels
        reader = Reader(data, "scales section")
        samples = reader.varint(MAX_SAMPLES)
        seed = reader.varint(2 ** 63 - 1)
        centres = [reader.varint(CODE_MAX) for _ in range(levels)]
        head = reader.pos
        ints, bits = decode_weights(reader.take(reader.remaining), [groups * priors] * levels,
                                    state.want_bits)
        codes = np.stack([q.reshape(groups, priors) + c for q, c in zip(ints, centres)], axis=2)
        if codes.min() < 0 or codes.max() > CODE_MAX:
            raise FormatError(f"corrupt scales section: spread codes beyond [0, {CODE_MAX}]")
        try:
            state.extras["scales"] = Scales(torch.from_numpy(codes.astype(np.int16)), samples,
                                            seed)
        except DDCodecError as exc:
            raise FormatError(f"corrupt scales section: {exc}") from None
        return bits + 8.0 * head

    def digest(self, state: CodingState, crc: int) -> int:
        scales = state.extras["scales"]
        crc = zlib.crc32(np.asarray([scales.samples, scales.seed], dtype="<u8").tobytes(), crc)
        return zlib.crc32(scales.codes.numpy().astype("<i2").tobytes(), crc)


class FkdViewsSection(SectionCodec):
    """An FKD relabelling's views (ddcodec.bitstream.fkd_coding): crops, flips and mixing of
    every epoch and batch. Critical: the per-epoch labels label exactly these views."""

    tag, name, kinds = 10, "fkd views", tuple(Kind)
    required = False

    def present(self, state: CodingState) -> bool:
        return state.fkd is not None

    def encode(self, state: CodingState) -> tuple[bytes, float]:
        h = state.header
        data = encode_fkd(state.fkd, h.height, h.width)
        return data, 8.0 * len(data)

    def decode(self, data: bytes, state: CodingState) -> float:
        h = state.header
        state.fkd = decode_fkd(data, h.num_images, h.height, h.width, state.memory_left)
        return 8.0 * len(data)

    def digest(self, state: CodingState, crc: int) -> int:
        return digest_fkd(state.fkd, crc)


def integer_arm(geometry: LatentGeometry, ints: list[np.ndarray],
                steps: list[list[int]]) -> IntegerARM:
    per_decoder = [{kind: (q, step) for kind, (q, step, _) in d["arm"].items()}
                   for d in geometry.split_weights(ints, steps)]
    if any(p["weight"][1] < ARM_WEIGHT_STEP_MIN or p["bias"][1] < ARM_BIAS_STEP_MIN
           for p in per_decoder):
        raise FormatError("corrupt header: ARM step outside the fixed-point range")
    cfg = geometry.config
    return IntegerARM.from_groups(per_decoder, cfg.arm_hidden, cfg.arm_context, cfg.k)


for _part in (WeightsSection(), LatentsSection(), LatentStreamsSection(), PixelsSection(),
              FloatPixelsSection(), LabelsSection(), ScalesSection(), FkdViewsSection()):
    register(_part)
