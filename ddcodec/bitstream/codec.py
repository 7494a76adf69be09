"""Encode a distilled set to .ddz bytes and decode them back, through one shared path.

Encoding a latent set writes the weights, then reads them back from those very bytes, builds the
integer ARM from them and codes the latents through the decoder's own loop; finally it decodes
the whole file and checks it got its latents back. Decoding rebuilds the images with the float
synthesis on the CPU: latents and weights are bit-exact everywhere, pixels within one 8-bit level.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field

import numpy as np
import torch

from ddcodec.bitstream import format as fmt
from ddcodec.bitstream.armint import IntegerARM
from ddcodec.bitstream.bytesio import FormatError, Reader
from ddcodec.bitstream.latent_coding import code_latents
from ddcodec.bitstream.pixel_coding import decode_pixels, encode_pixels
from ddcodec.bitstream.weight_coding import decode_weights, encode_weights
from ddcodec.codec import synthesis, upsampling
from ddcodec.codec.arm import causal_offsets
from ddcodec.codec.latents import LatentLayout
from ddcodec.codec.model import MODULES, CodecConfig, module_shapes
from ddcodec.data import Normalization
from ddcodec.bitstream import entropy
from ddcodec.setfile import DistilledSet

KINDS = ("weight", "bias")
FRAMING_BYTES = 5  # tag + length of each section and of the end record
END_CHECKSUM_BYTES = 8  # the end record's two CRC32s


@dataclass
class Decoded:
    header: fmt.Header
    images: torch.Tensor  # uint8 N x C x H x W
    labels: torch.Tensor  # int64 N
    latents: list[np.ndarray] | None  # per level: G x planes x h x w
    section_bytes: dict[str, int] = field(default_factory=dict)
    estimated_bits: dict[str, float] = field(default_factory=dict)
    file_bytes: int = 0

    @property
    def normalization(self) -> Normalization:
        return Normalization(tuple(self.header.mean), tuple(self.header.std))

    def to_set(self) -> DistilledSet:
        h = self.header
        provenance = {"method": h.meta.get("method", "unknown"), "data": h.meta.get("data"),
                      "decoded_from_ddz": True}
        if "syn_lr" in h.meta:
            provenance["syn_lr"] = float(h.meta["syn_lr"])
        return DistilledSet(self.normalization.normalize(self.images), self.labels,
                            list(h.class_names), self.normalization, provenance)


# ------------------------------------------------------------------------------- layout helpers

def _codec_config(lat: fmt.LatentHeader, shared: bool) -> CodecConfig:
    try:
        return CodecConfig(decoder=lat.decoder, arm_context=lat.arm_context,
                           arm_hidden=lat.arm_hidden, levels=lat.levels,
                           channels_per_level=lat.channels_per_level, gain=lat.gain, k=lat.k,
                           shared_decoder=shared)
    except ValueError as exc:
        raise FormatError(f"corrupt or unsupported header: {exc}") from exc


def _tensor_groups(config: CodecConfig, layout: LatentLayout, channels: int):
    """Canonical order of a decoder's tensor groups: (module, kind, [(name, shape)])."""
    shapes = module_shapes(config, layout, channels)
    order = []
    for module in MODULES:
        for kind in KINDS:
            names = [(n, s) for n, s in shapes[module].items()
                     if n.endswith("bias") == (kind == "bias")]
            if names:
                order.append((module, kind, names))
    return order


def _latent_geometry(h: fmt.Header):
    lat = h.latent
    config = _codec_config(lat, h.shared_decoder)
    layout = LatentLayout(h.height, h.width, lat.levels, lat.channels_per_level)
    groups = 1 if h.shared_decoder else h.num_classes
    counts = h.samples_per_class
    if not h.shared_decoder and len(set(counts)) != 1:
        raise FormatError("corrupt header: per-class decoders need equal samples per class")
    per_group = h.num_images if h.shared_decoder else counts[0]
    if len(lat.steps) != groups:
        raise FormatError("corrupt header: wrong number of decoders")
    _check_plausible(layout.values_per_image * h.num_images, None)
    return config, layout, groups, per_group


# ----------------------------------------------------------------------------------- encoding

def encode_set(distilled: DistilledSet) -> tuple[bytes, dict]:
    """Return the .ddz bytes and a report of estimated bits per part."""
    counts = [int((distilled.labels == c).sum()) for c in range(distilled.num_classes)]
    order = torch.argsort(distilled.labels, stable=True)
    if distilled.labels.ndim != 1 or not torch.equal(order, torch.arange(len(order))):
        raise ValueError("labels must be hard and class-ordered to be coded")
    c, hgt, wid = distilled.image_shape
    header = fmt.Header(c, hgt, wid, list(distilled.class_names), counts,
                        list(distilled.normalization.mean), list(distilled.normalization.std),
                        meta=_meta(distilled))
    if distilled.codec is None:
        return _encode_pixels(distilled, header)
    return _encode_latent(distilled, header)


def _meta(distilled: DistilledSet) -> dict[str, str]:
    meta = {k: str(distilled.provenance[k]) for k in ("method", "data", "syn_lr")
            if distilled.provenance.get(k) is not None}
    return meta


def _encode_pixels(distilled: DistilledSet, header: fmt.Header) -> tuple[bytes, dict]:
    unit = distilled.normalization.denormalize(distilled.images)
    images = unit.mul(255).round().clamp(0, 255).to(torch.uint8).numpy()
    head = fmt.write_header(header)
    pixels, pixel_bits = encode_pixels(images)
    body = head + fmt.write_section(fmt.SECTION_PIXELS, pixels)
    data = body + fmt.end_record(body, 0)
    return data, {"header": 8 * len(head), "pixels": pixel_bits}


def _encode_latent(distilled: DistilledSet, header: fmt.Header) -> tuple[bytes, dict]:
    codec = distilled.codec
    cfg, lay = codec["config"], codec["layout"]
    header.shared_decoder = bool(cfg["shared_decoder"])
    groups = codec["groups"]
    steps, ints = [], []
    for g in groups:
        row = []
        for module in MODULES:
            for kind in KINDS:
                if kind in g[module]:
                    row.append(int(g[module][kind]["step_log2"]))
                    ints.append(g[module][kind]["q"].numpy())
        steps.append(row)
    header.latent = fmt.LatentHeader(cfg["decoder"], cfg["arm_context"], cfg["arm_hidden"],
                                     lay["levels"], lay["channels_per_level"],
                                     float(np.float32(cfg["gain"])), cfg["k"], steps)
    head = fmt.write_header(header)
    weights, weight_bits = encode_weights(ints)
    latents = [np.stack([g["latents"][level].numpy().astype(np.int64) for g in groups])
               for level in range(lay["levels"])]
    _, layout, n_groups, per_group = _latent_geometry(header)
    planes = per_group * layout.channels_per_level
    latents = [x.reshape(n_groups, planes, *x.shape[-2:]) for x in latents]
    arm = _integer_arm(header, decode_weights(weights, _weight_counts(header)))  # closed loop
    coder = entropy.encoder()
    _, latent_bits = code_latents("encode", arm, causal_offsets(header.latent.arm_context),
                                  layout.grid_sizes(), n_groups, planes, coder, latents)
    latent_bytes = entropy.words_to_bytes(coder)
    body = (head + fmt.write_section(fmt.SECTION_WEIGHTS, weights)
            + fmt.write_section(fmt.SECTION_LATENTS, latent_bytes))
    data = body + fmt.end_record(body, _latent_crc(latents))
    check = decode_bytes(data)
    if any(not np.array_equal(a, b) for a, b in zip(check.latents, latents)):
        raise RuntimeError("internal error: the decoder did not reproduce the encoder's latents")
    return data, {"header": 8 * len(head), "weights": weight_bits, "latents": latent_bits}


# ----------------------------------------------------------------------------------- decoding

MIN_BITS_PER_VALUE = 1 / 256  # no real set codes its values in fewer bits on average
SMALL_SET_VALUES = 1 << 20


def _check_plausible(values: int, file_bytes: int | None) -> None:
    """Refuse headers that announce far more values than the file could hold, before allocating."""
    limit = SMALL_SET_VALUES + (8 * file_bytes / MIN_BITS_PER_VALUE if file_bytes else 2 ** 31)
    if values > min(limit, 2 ** 31):
        raise FormatError("corrupt header: implausibly many values for the file's size")


def _weight_counts(header: fmt.Header) -> list[int]:
    config, layout, groups, _ = _latent_geometry(header)
    order = _tensor_groups(config, layout, header.channels)
    per_decoder = [sum(int(np.prod(s)) for _, s in names) for _, _, names in order]
    for row in header.latent.steps:
        if len(row) != len(order):
            raise FormatError("corrupt header: wrong number of quantisation steps")
    return per_decoder * groups


def _split_weights(header: fmt.Header, ints: list[np.ndarray]):
    """Flat integer groups -> per decoder {module: {kind: (q, step, [(name, shape)])}}."""
    config, layout, groups, _ = _latent_geometry(header)
    order = _tensor_groups(config, layout, header.channels)
    decoders, it = [], iter(ints)
    for g in range(groups):
        entry: dict = {m: {} for m in MODULES}
        for (module, kind, names), step in zip(order, header.latent.steps[g]):
            entry[module][kind] = (next(it), step, names)
        decoders.append(entry)
    return decoders


def _integer_arm(header: fmt.Header, ints: list[np.ndarray]) -> IntegerARM:
    lat = header.latent
    per_decoder = [{kind: (q, step) for kind, (q, step, _) in d["arm"].items()}
                   for d in _split_weights(header, ints)]
    if any(per["weight"][1] < -8 or per["bias"][1] < -16 for per in per_decoder):
        raise FormatError("corrupt header: ARM step outside the fixed-point range")
    return IntegerARM.from_groups(per_decoder, lat.arm_hidden, lat.arm_context, lat.k)


def _latent_crc(latents: list[np.ndarray]) -> int:
    crc = 0
    for grid in latents:
        crc = zlib.crc32(grid.astype("<i2").tobytes(), crc)
    return crc


def _float_params(decoders, module: str) -> dict[str, torch.Tensor]:
    """Dequantised parameters of one module, stacked over decoders: value = q * 2^step."""
    params: dict[str, list[torch.Tensor]] = {}
    for entry in decoders:
        for q, step, names in entry[module].values():
            values = torch.from_numpy(q.astype(np.float64) * 2.0 ** step)
            offset = 0
            for name, shape in names:
                n = int(np.prod(shape))
                params.setdefault(name, []).append(values[offset:offset + n].view(shape).float())
                offset += n
    return {k: torch.stack(v) for k, v in params.items()}


def decode_bytes(data: bytes) -> Decoded:
    reader = Reader(data, "file")
    header = fmt.read_header(reader)
    header_bytes = reader.pos
    sections, _, latent_crc = fmt.read_sections(reader)
    sizes = {"header": header_bytes, **{fmt.SECTION_NAMES[t]: len(v) for t, v in sections.items()}}
    n = header.num_images
    labels = torch.arange(header.num_classes).repeat_interleave(
        torch.tensor(header.samples_per_class))
    shape = (n, header.channels, header.height, header.width)
    _check_plausible(n * header.channels * header.height * header.width, len(data))
    if header.latent is None:
        if fmt.SECTION_PIXELS not in sections:
            raise FormatError("corrupt file: the pixel section is missing")
        images = torch.from_numpy(decode_pixels(sections[fmt.SECTION_PIXELS], shape))
        estimate = {"header": 8.0 * header_bytes, "framing": 8.0 * (FRAMING_BYTES * 2 + END_CHECKSUM_BYTES),
                    "pixels": 8.0 * len(sections[fmt.SECTION_PIXELS])}
        return Decoded(header, images, labels, None, sizes, estimate, file_bytes=len(data))
    for tag in (fmt.SECTION_WEIGHTS, fmt.SECTION_LATENTS):
        if tag not in sections:
            raise FormatError(f"corrupt file: the {fmt.SECTION_NAMES[tag]} section is missing")
    config, layout, groups, per_group = _latent_geometry(header)
    _check_plausible(layout.values_per_image * n, len(data))
    ints, weight_bits = decode_weights(sections[fmt.SECTION_WEIGHTS], _weight_counts(header),
                                       with_bits=True)
    arm = _integer_arm(header, ints)
    planes = per_group * layout.channels_per_level
    coder = entropy.decoder(sections[fmt.SECTION_LATENTS], "latent section")
    latents, latent_bits = code_latents("decode", arm, causal_offsets(config.arm_context),
                                        layout.grid_sizes(), groups, planes, coder)
    if _latent_crc(latents) != latent_crc:
        raise FormatError("latent checksum mismatch: the file is corrupt")
    images = synthesize(header, ints, latents)
    estimate = {"header": 8.0 * header_bytes, "framing": 8.0 * (FRAMING_BYTES * 3 + END_CHECKSUM_BYTES),
                "weights": weight_bits, "latents": latent_bits}
    return Decoded(header, images, labels, latents, sizes, estimate, file_bytes=len(data))


@torch.no_grad()
def synthesize(header: fmt.Header, ints: list[np.ndarray], latents: list[np.ndarray]):
    """Float decoder on the CPU: latents and dequantised weights -> uint8 images, class-ordered."""
    config, layout, groups, per_group = _latent_geometry(header)
    decoders = _split_weights(header, ints)
    grids = [torch.from_numpy(x.astype(np.float32)).view(groups, per_group,
                                                          layout.channels_per_level, *x.shape[-2:])
             for x in latents]
    kernels = _float_params(decoders, "upsampler")["kernel_weight"]
    stack = upsampling.upsample_stack(grids, kernels)
    n_pointwise = len(synthesis.preset_widths(config.decoder)) + 1
    images = synthesis.synthesize(stack, _float_params(decoders, "synthesis"), n_pointwise)
    return images.clamp(0, 1).mul(255).round().to(torch.uint8).flatten(0, 1)
