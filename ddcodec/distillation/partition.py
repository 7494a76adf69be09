"""Which classes each block of a run holds: contiguous ranges, as even as possible. Blocks,
experts and TM's expert folders all split the classes this one way."""

from __future__ import annotations

from ddcodec.errors import DDCodecError


def block_ranges(num_classes: int, blocks: int) -> list[range]:
    """B contiguous blocks of classes, sizes differing by at most one (the first ones larger)."""
    if not 1 <= blocks <= num_classes:
        raise DDCodecError(f"--blocks must be between 1 and the {num_classes} classes")
    size, extra = divmod(num_classes, blocks)
    out, start = [], 0
    for b in range(blocks):
        stop = start + size + (b < extra)
        out.append(range(start, stop))
        start = stop
    return out
