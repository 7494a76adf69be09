"""Fuzzing a reader: decode each hostile variant of a set of .ddz files in this process, under a
time limit, and sort what happens (rejected with one line, decoded to the same or other data, a
crash, a hang), with the memory each decode took against the documented bound."""

from __future__ import annotations

import math
import random
import struct

from ddcodec.bitstream.codec import decode_bytes, memory_bound
from ddcodec.bitstream.label_coding import params_bytes
from ddcodec.errors import DDCodecError
from ddcodec.memory import status_kib
from ddcodec.audit.mutations import (amplified, hostile_header, mutate_bytes, mutate_structure,
                                    reseal, resealed, splice)


OUTCOMES = ("rejected", "decoded_same", "decoded_different", "crash", "hang")


class _Hang(Exception):
    pass


def _reset_peak() -> int | None:
    """Reset this process's peak RSS (Linux: clear_refs 5) and return its RSS now, in KiB."""
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
    except OSError:
        return None
    return status_kib("VmRSS")


def run_case(data: bytes, reference, timeout_s: float = 10.0) -> tuple[str, str, float | None]:
    """Decode `data` in this process: (outcome, detail, peak MiB above the RSS before it; None
    where the platform cannot tell). `reference` is the Decoded of the undamaged file (None:
    a forged file with no original); a decode that gives other images or labels is
    'decoded_different'."""
    import signal

    import torch

    def alarm(signum, frame):
        raise _Hang()

    before = _reset_peak()
    timed = hasattr(signal, "setitimer")  # POSIX; elsewhere a hang would simply block
    if timed:
        previous = signal.signal(signal.SIGALRM, alarm)
        signal.setitimer(signal.ITIMER_REAL, timeout_s)
    decoded, outcome, detail = None, "", ""
    try:
        decoded = decode_bytes(data)
    except DDCodecError as exc:
        outcome, detail = "rejected", str(exc).split(":")[0][:60]
    except _Hang:
        outcome = "hang"
    except BaseException as exc:  # noqa: BLE001 - everything else is a crash, panics included
        if isinstance(exc, KeyboardInterrupt):
            raise
        outcome, detail = "crash", f"{type(exc).__name__}: {str(exc)[:200]}"
    finally:
        if timed:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
    peak = status_kib("VmHWM")
    above = (peak - before) / 1024 if before is not None and peak is not None else None
    if outcome:
        return outcome, detail, above
    same = reference is not None and (
        decoded.images.shape == reference.images.shape
        and torch.equal(decoded.images, reference.images)
        and torch.equal(decoded.labels, reference.labels)
        and _same_extras(decoded, reference)
        and decoded.header.class_names == reference.header.class_names
        and decoded.header.mean == reference.header.mean
        and decoded.header.std == reference.header.std
        and decoded.header.meta == reference.header.meta)
    return ("decoded_same" if same else "decoded_different"), "", above


def _same_extras(decoded, reference) -> bool:
    """Soft labels and a distributional file's scales are part of what a file decodes to."""
    import torch

    if (decoded.soft_labels is None) != (reference.soft_labels is None) or (
            decoded.sampler is None) != (reference.sampler is None):
        return False
    if reference.soft_labels is not None:
        a, b = decoded.soft_labels, reference.soft_labels
        if not torch.equal(a.probabilities, b.probabilities) or params_bytes(a) != params_bytes(b):
            return False
    if reference.sampler is not None:
        a, b = decoded.sampler.scales, reference.sampler.scales
        return torch.equal(a.codes, b.codes) and (a.samples, a.seed) == (b.samples, b.seed)
    return True


MODES = ("plain", "resealed", "hostile-header", "structure/none", "structure/crcs",
         "structure/all", "splice/crcs", "splice/all", "amplify/all")


def fuzz(files: dict[str, bytes], cases: int, seed: int = 0, timeout_s: float = 10.0,
         modes: tuple[str, ...] = MODES):
    """`cases` mutations spread over `files` and `modes` in turn:
    - plain / resealed: random byte damage, checksums as they were / header and file CRCs
      recomputed; hostile-header: a resealed header announcing hostile sizes;
    - structure/<reseal>: one header field, labels parameter or section byte changed
      (`mutate_structure`), then resealed in one of the three ways (`RESEALS`);
    - splice/<reseal>: a section of another file of `files` put in;
    - amplify/all: forged, valid files announcing far more than their size (`amplified`).
    Returns per (file, mode) outcome counts, the first few details of each bad outcome and
    the peak memory: the largest MiB above a case's starting RSS, and the most by which any
    case exceeded the documented bound (ddcodec.bitstream.codec.memory_bound; <= 0: within)."""
    from collections import Counter

    rng = random.Random(seed)
    references = {name: decode_bytes(data) for name, data in files.items()}
    counts: dict[tuple[str, str], Counter] = {}
    examples: list[dict] = []
    names = sorted(files)
    memory = {"peak_mib": 0.0, "worst_over_bound_mib": -math.inf, "measured": 0}
    for i in range(cases):
        name = names[i % len(names)]
        mode = modes[(i // len(names)) % len(modes)]
        original = files[name]
        kind, data = _mutate(mode, original, files, rng)
        if mode.startswith("amplify"):
            name = "forged"
        reference = references.get(name)
        if data == original:
            outcome, detail, above = "unchanged", "", None
        else:
            outcome, detail, above = run_case(data, reference, timeout_s)
        if above is not None:
            memory["measured"] += 1
            memory["peak_mib"] = max(memory["peak_mib"], above)
            over = above - memory_bound(len(data)) / 2 ** 20
            memory["worst_over_bound_mib"] = max(memory["worst_over_bound_mib"], over)
        counts.setdefault((name, mode), Counter())[outcome] += 1
        bad = (outcome in ("crash", "hang") or (
            outcome == "decoded_different" and silent_change_possible(mode, original))
               or (above is not None and above > memory_bound(len(data)) / 2 ** 20))
        if bad and len(examples) < 20:
            examples.append({"file": name, "mode": mode, "kind": kind, "outcome": outcome,
                             "detail": detail, "case": i,
                             "peak_mib": None if above is None else round(above, 1)})
    return counts, examples, memory


def silent_change_possible(mode: str, original: bytes) -> bool:
    """Whether a decode that differs from the original is a defect: the values CRC was not
    recomputed, and the file is of a version whose values CRC covers the header (3 on)."""
    return not mode.endswith("/all") and struct.unpack_from("<H", original, 4)[0] >= 3


def _mutate(mode: str, original: bytes, files: dict[str, bytes],
            rng: random.Random) -> tuple[str, bytes]:
    family, _, how = mode.partition("/")
    if family == "plain":
        return mutate_bytes(original, rng)
    if family == "resealed":
        kind, data = mutate_bytes(original, rng)
        return kind, reseal(data)
    if family == "hostile-header":
        return hostile_header(original, rng)
    if family == "structure":
        kind, data = mutate_structure(original, rng)
    elif family == "splice":
        donor = files[rng.choice(sorted(files))]
        kind, data = splice(original, donor, rng)
    else:
        kind, data = amplified(rng)
    return kind, resealed(data, how, original)
