"""Fuzzing the decoder and the encoder at scale: hostile files and inputs must be refused with
one clear error, or read / written correctly.

Decoding: the corpus of `ddcodec.audit.corpus.corpus` (the golden latent set as format v3, v2
and v1, and from it pixel, float, labelled with each label codec, per-epoch, distributional and
substream files) and --cases mutations spread over it and over the modes of
`ddcodec.audit.runner.MODES`: plain byte damage (checksums left alone); the same resealed
(header and file CRCs recomputed); resealed headers announcing hostile sizes; one header field,
labels parameter or section byte changed (structure-aware) with the checksums left, resealed, or
all recomputed (the values CRC too, by decoding: a forger's file); a section spliced in from
another kind of file, resealed or all recomputed; forged valid files that amplify a few bytes
into large label sets or many large decoders. Each case is decoded in this process with a time
limit and its peak memory measured (Linux: VmHWM after clear_refs).

Counted: rejections, decodes (same or different from the original), crashes (any exception but
the project's error: a traceback for the user), hangs, the peak memory above the case's start
against the documented bound (256 MiB + 2,048 bytes per file byte), and silent changes: a decode
that differs from the original while its values CRC was not recomputed, in a version-3 file
(versions 1 and 2, still read, leave the header out of the values CRC; their rows are shown).

Encoding: --encode-cases runs of `encode` on the hostile inputs of
`ddcodec.audit.hostile_inputs` (coder parameters out of range, integers beyond the coder,
bool tensors, stride-0 tensors of 300,000 images, NaN normalisation, decompression bombs and
broken PNGs): each must be refused with a DDCodecError or give a file `test` accepts.

    python -m benchmarks.fuzz                  # 10,800 + 230 cases, a few minutes on 2 cores

Writes the "Decoder fuzzing" section of docs/BENCHMARKS.md and docs/benchmarks/fuzz.json.
"""

from __future__ import annotations

import datetime as dt
import platform
import sys
import time
from collections import Counter
from pathlib import Path

import torch

from ddcodec import __version__
from ddcodec.bitstream.codec import MEMORY_FLOOR, MEMORY_PER_FILE_BYTE, decode_bytes
from ddcodec.audit.hostile_inputs import CRAFTS, make, try_encode
from ddcodec.audit.corpus import corpus
from ddcodec.audit.runner import MODES, OUTCOMES, fuzz
from ddcodec.sets.setfile import load_set
from benchmarks.harness import ROOT, benchmark_parser, replace_section, write_record

DATA = ROOT / "tests" / "fixtures"


def encode_fuzz(cases: int, seed: int) -> tuple[Counter, list[dict], Counter]:
    """`cases` runs of encode over the hostile inputs in turn, each with its own draws: the
    outcome counts, the bad outcomes' details, and which kinds were encoded (valid draws)."""
    import random
    import tempfile

    rng = random.Random(seed)
    counts, examples, encoded = Counter(), [], Counter()
    for i in range(cases):
        kind = CRAFTS[i % len(CRAFTS)]
        with tempfile.TemporaryDirectory() as tmp:
            path, source, options = make(kind, Path(tmp), rng)
            outcome, detail = try_encode(path, source, options)
        counts[outcome] += 1
        if outcome == "encoded":
            encoded[kind] += 1
        if outcome in ("crash", "encoded_unreadable") and len(examples) < 20:
            examples.append({"input": kind, "outcome": outcome, "detail": detail, "case": i})
    return counts, examples, encoded


def main() -> int:
    parser = benchmark_parser(__doc__)
    parser.add_argument("--cases", type=int, default=10_800)
    parser.add_argument("--encode-cases", type=int, default=10 * len(CRAFTS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per case")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    torch.set_num_threads(1)

    files = corpus(load_set(DATA / "golden_set.pt"), (DATA / "golden_v2.ddz").read_bytes(),
                   (DATA / "golden.ddz").read_bytes())
    for data in files.values():
        decode_bytes(data)  # warm: imports, tables, first allocations
    started = time.perf_counter()
    counts, examples, memory = fuzz(files, args.cases, args.seed, args.timeout)
    decode_seconds = time.perf_counter() - started
    started = time.perf_counter()
    encoded, encode_examples, valid_kinds = encode_fuzz(args.encode_cases, args.seed)
    encode_seconds = time.perf_counter() - started

    rows = []
    for (name, mode), c in sorted(counts.items()):
        rows.append({"file": name, "mode": mode, "cases": sum(c.values()),
                     "unchanged": c.get("unchanged", 0), **{o: c.get(o, 0) for o in OUTCOMES}})
    by_mode = []
    for mode in MODES:
        for legacy in (False, True):
            mine = [r for r in rows if r["mode"] == mode and _legacy(r["file"]) == legacy]
            if mine:
                total = Counter()
                for r in mine:
                    total.update({k: v for k, v in r.items() if isinstance(v, int)})
                by_mode.append({"mode": mode, "files": "v1, v2" if legacy else (
                    "forged" if mode.startswith("amplify") else "v3"), **total})
    total = Counter()
    for row in rows:
        total.update({k: v for k, v in row.items() if isinstance(v, int)})
    silent = sum(r["decoded_different"] for r in rows
                 if not r["mode"].endswith("/all") and not _legacy(r["file"]))
    legacy_changes = sum(r["decoded_different"] for r in rows
                         if not r["mode"].endswith("/all") and _legacy(r["file"]))
    within = memory["measured"] == 0 or memory["worst_over_bound_mib"] < 0
    verdict = {"decode_cases": total["cases"], "crashes": total["crash"], "hangs": total["hang"],
               "silent_changes_v3": silent, "legacy_resealed_changes": legacy_changes,
               "peak_mib_above_case_start": round(memory["peak_mib"], 1),
               "worst_mib_over_bound": round(memory["worst_over_bound_mib"], 1),
               "memory_within_bound": within, "memory_measured_cases": memory["measured"],
               "encode_cases": sum(encoded.values()), "encode": dict(encoded),
               "encoded_kinds": dict(valid_kinds),
               "encode_internal_errors": encoded["crash"],
               "encode_unreadable": encoded["encoded_unreadable"]}
    ok = (total["crash"] == 0 and total["hang"] == 0 and silent == 0 and within
          and encoded["crash"] == 0 and encoded["encoded_unreadable"] == 0)

    print(f"{'mode':16s} {'files':7s} {'cases':>6s} {'no-op':>5s} {'rejected':>8s} "
          f"{'same':>6s} {'different':>9s} {'crash':>5s} {'hang':>4s}")
    for r in by_mode:
        print(f"{r['mode']:16s} {r['files']:7s} {r['cases']:6d} {r['unchanged']:5d} "
              f"{r['rejected']:8d} {r['decoded_same']:6d} {r['decoded_different']:9d} "
              f"{r['crash']:5d} {r['hang']:4d}")
    print(f"encode: {dict(encoded)} in {encode_seconds:.0f} s")
    print(f"{total['cases']} decode cases in {decode_seconds:.0f} s; {verdict}; "
          f"{'PASS' if ok else 'FAIL'}")
    for e in examples + encode_examples:
        print("example:", e)
    if args.no_write:
        return 0 if ok else 1

    record = {"date": dt.date.today().isoformat(), "machine": platform.platform(),
              "cpu_threads": torch.get_num_threads(), "ddcodec": __version__,
              "cases": args.cases, "encode_cases": args.encode_cases, "seed": args.seed,
              "timeout_s": args.timeout, "seconds": round(decode_seconds + encode_seconds, 1),
              "rows": rows, "by_mode": by_mode, "verdict": verdict, "pass": ok,
              "examples": examples + encode_examples}
    write_record(Path(args.out), "fuzz", record)
    minutes = (decode_seconds + encode_seconds) / 60
    lines = ["## Decoder fuzzing", "",
             f"`python -m benchmarks.fuzz` ({record['date']}, {record['machine']}, one thread, "
             f"{minutes:.1f} min; raw counts per file in docs/benchmarks/fuzz.json): "
             f"{total['cases']:,} mutated and forged files decoded in one process, each with a "
             f"{args.timeout:g} s limit and its peak memory measured, then "
             f"{sum(encoded.values()):,} runs of `encode` on hostile inputs. Modes: *plain* "
             "random byte damage (bit flips, bytes set, truncation, insertions, deletions, "
             "scattered bytes, hostile length fields), checksums left alone; *resealed* the same "
             "with the header and file CRCs recomputed; *hostile-header* a resealed header "
             "announcing hostile sizes; *structure/...* one header field (hard labels, class "
             "names and order, mean/std, gain, metadata, steps, counts), one labels parameter "
             "(codec, loss, temperature, epochs, views' seed and strategy, step, k, bits, "
             "widths) or one byte of another section changed, then the checksums left (*none*), "
             "header and file CRCs recomputed (*crcs*) or all three recomputed (*all*: the "
             "values CRC by decoding, a forger's valid file); *splice/...* a section of another "
             "kind of file put in; *amplify/all* forged valid files of a few KB announcing "
             "per-epoch labels of up to 67 million values or 100 decoders of half a million "
             "weights. *same*/*different*: decoded to the original set (images, labels, soft "
             "labels and their parameters, names, normalisation, metadata) or to another; "
             "*no-op*: the mutation left the file unchanged. Rows *v1, v2*: the golden latent "
             "file in the older versions, which are still read and whose values CRC leaves "
             "the header out.", "",
             "| mode | files | cases | no-op | rejected | decoded same | decoded different "
             "| crashes | hangs |", "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in by_mode:
        lines.append(f"| {r['mode']} | {r['files']} | {r['cases']:,} | {r['unchanged']:,} | "
                     f"{r['rejected']:,} | {r['decoded_same']:,} | {r['decoded_different']:,} | "
                     f"{r['crash']} | {r['hang']} |")
    bound = f"{MEMORY_FLOOR >> 20} MiB + {MEMORY_PER_FILE_BYTE:,} bytes per file byte"
    lines += ["", f"Result: **{verdict['crashes']} crashes, {verdict['hangs']} hangs, {silent} "
                  "silent changes** (decodes that differ from the original while the values "
                  "CRC was not recomputed, in version-3 files: every value that reaches the "
                  "decoded set or `measure` is inside it). Peak memory of any case "
                  f"{memory['peak_mib']:.0f} MiB above its start; every case stayed within the "
                  f"documented bound ({bound}), the closest "
                  f"{-memory['worst_over_bound_mib']:.0f} MiB under it. Every rejection is a "
                  "one-line `DDCodecError`. The older versions' resealed files decoded to other "
                  f"values {legacy_changes} times: a v1/v2 header edited and resealed still "
                  "reads (the reason for version 3).", "",
                  f"`encode` on {sum(encoded.values()):,} hostile inputs ({len(CRAFTS)} kinds, "
                  "each drawn ten times): "
                  + ", ".join(f"{v:,} {k.replace('_', ' ')}" for k, v in sorted(encoded.items()))
                  + f"; **{encoded['crash']} internal errors, {encoded['encoded_unreadable']} "
                  "files its own decoder refuses**. Encoded (draws that are valid sets, each "
                  "file accepted by `test`): "
                  + (", ".join(f"`{k}` x {v}" for k, v in sorted(valid_kinds.items()))
                     or "none") + " (`topk-random` draws k from 255, 256 and 299 of 300 classes; "
                  "255 is the most a file holds). Kinds: "
                  + ", ".join(f"`{c}`" for c in CRAFTS) + "."]
    replace_section(Path(args.out), "## Decoder fuzzing", "\n".join(lines))
    return 0 if ok else 1


def _legacy(name: str) -> bool:
    return name.endswith(("-v1", "-v2"))


if __name__ == "__main__":
    sys.exit(main())
