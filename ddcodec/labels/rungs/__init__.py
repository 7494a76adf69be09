"""The soft-label codecs (the rungs of the compression ladder), one registry, torch-free.

A rung is one module with one `LabelRung` (ddcodec.labels.rungs.base): its quantiser, cost
estimate, validation and its part of the labels section. It is registered here by a `RungSpec`:
its name (what configs, the command line and set files say), its wire id (the codec byte a .ddz
stores: fixed for ever, never reused), its default size k and the module that implements it,
imported on first use so that the command line can list the rungs without loading torch.

    register_rung(RungSpec("vq", 1, 16, "ddcodec.labels.rungs.vq", "..."))
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from ddcodec.errors import DDCodecError

WIRE_IDS = 0x40  # the codec byte's low 6 bits; 0x80 marks per-epoch labels, 0x40 a hard weight


@dataclass(frozen=True)
class RungSpec:
    name: str
    wire_id: int
    default_k: int | None  # codebook entries or kept classes when none is asked (None: no k)
    module: str  # defines RUNG, the LabelRung
    summary: str  # one line for --help
    title: str = ""  # how reports and plots name it (default: its name)

    @property
    def display(self) -> str:
        return self.title or self.name


RUNGS: dict[str, RungSpec] = {}


def register_rung(spec: RungSpec) -> RungSpec:
    if spec.name in RUNGS or spec.name == "hard":
        raise ValueError(f"label rung {spec.name!r} is registered twice")
    if not 0 <= spec.wire_id < WIRE_IDS or any(s.wire_id == spec.wire_id
                                               for s in RUNGS.values()):
        raise ValueError(f"label rung {spec.name!r}: wire id {spec.wire_id} is taken or out "
                         f"of [0, {WIRE_IDS})")
    RUNGS[spec.name] = spec
    return spec


def rung_names() -> tuple[str, ...]:
    return tuple(RUNGS)


def spec_of(name: str) -> RungSpec:
    if name not in RUNGS:
        raise DDCodecError(f"unknown label codec {name!r}; choose {', '.join(RUNGS)}")
    return RUNGS[name]


def by_wire_id(wire_id: int) -> RungSpec | None:
    return next((s for s in RUNGS.values() if s.wire_id == wire_id), None)


def rung(name: str):
    """The LabelRung that implements `name` (its module imported on first use)."""
    return importlib.import_module(spec_of(name).module).RUNG


def summaries() -> str:
    return "; ".join(f"{s.name} ({s.summary})" for s in RUNGS.values())


register_rung(RungSpec("float16", 0, None, "ddcodec.labels.rungs.float16",
                       "the probabilities as float16, the papers' count"))
register_rung(RungSpec("vq", 1, 16, "ddcodec.labels.rungs.vq",
                       "a codebook of --k quantised log-probability vectors, one index per "
                       "image", "VQ"))
register_rung(RungSpec("topk", 2, 2, "ddcodec.labels.rungs.topk",
                       "the --k most probable classes per image at 8 bits each, the rest "
                       "spread evenly", "top-k"))
register_rung(RungSpec("vqae", 3, 64, "ddcodec.labels.rungs.vqae",
                       "a VQ autoencoder: --k codes of 16 numbers and one small decoder MLP, "
                       "for many classes", "VQAE"))
