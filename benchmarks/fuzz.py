"""Fuzzing the decoder at scale: mutated .ddz files must fail with one clear error, or decode.

Three files (the golden latent set as format v2 and v1, and a lossless pixel set of the same
images), and --cases mutations spread over them in three modes: plain byte damage (the
checksums left alone), the same damage resealed (header and file CRCs recomputed, so it reaches
the parsers), and resealed headers that announce hostile sizes. Each case is decoded in this
process with a time limit. Counted: rejections, decodes (same or different from the original),
crashes (any exception but the project's error: a traceback for the user), hangs, and the
process's peak memory above its idle size. A decode that differs from the original is silent
damage, a failure, when the checksums were not resealed.

    python benchmarks/fuzz.py                  # 10,000 cases, about 2 minutes on 2 cores

Writes the "Decoder fuzzing" section of docs/BENCHMARKS.md and docs/benchmarks/fuzz.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import platform
import resource
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import torch  # noqa: E402

from ddcodec import __version__  # noqa: E402
from ddcodec.bitstream.codec import decode_bytes  # noqa: E402
from ddcodec.bitstream.mutations import OUTCOMES, corpus, fuzz  # noqa: E402
from ddcodec.setfile import load_set  # noqa: E402
from report import replace_section, write_record  # noqa: E402

DATA = ROOT / "tests" / "data"


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per case")
    parser.add_argument("--out", default=str(ROOT / "docs" / "BENCHMARKS.md"))
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    torch.set_num_threads(1)

    files = corpus(load_set(DATA / "golden_set.pt"), (DATA / "golden_v2.ddz").read_bytes(),
                   (DATA / "golden.ddz").read_bytes())
    for data in files.values():
        decode_bytes(data)  # warm: imports, tables, first allocations
    idle = peak_mb()
    started = time.perf_counter()
    counts, examples = fuzz(files, args.cases, args.seed, args.timeout)
    seconds = time.perf_counter() - started
    above_idle = peak_mb() - idle

    rows = []
    for (name, mode), c in sorted(counts.items()):
        rows.append({"file": name, "mode": mode, "cases": sum(c.values()),
                     "unchanged": c.get("unchanged", 0), **{o: c.get(o, 0) for o in OUTCOMES}})
    total = Counter()
    for row in rows:
        total.update({k: v for k, v in row.items() if isinstance(v, int)})
    silent = sum(r["decoded_different"] for r in rows if r["mode"] == "plain")
    verdict = {"crashes": total["crash"], "hangs": total["hang"],
               "silent_wrong_decodes_unsealed": silent,
               "peak_mb_above_idle": round(above_idle, 1)}
    ok = (total["crash"] == 0 and total["hang"] == 0 and silent == 0 and above_idle < 1024)

    header = (f"{'file':10s} {'mode':15s} {'cases':>6s} {'no-op':>5s} {'rejected':>8s} "
              f"{'same':>6s} {'different':>9s} {'crash':>5s} {'hang':>4s}")
    print(header)
    for r in rows:
        print(f"{r['file']:10s} {r['mode']:15s} {r['cases']:6d} {r['unchanged']:5d} "
              f"{r['rejected']:8d} "
              f"{r['decoded_same']:6d} {r['decoded_different']:9d} {r['crash']:5d} "
              f"{r['hang']:4d}")
    print(f"{total['cases']} cases in {seconds:.0f} s; {verdict}; "
          f"{'PASS' if ok else 'FAIL'}")
    for e in examples:
        print("example:", e)
    if args.no_write:
        return 0 if ok else 1

    record = {"date": dt.date.today().isoformat(), "machine": platform.platform(),
              "cpu_threads": torch.get_num_threads(), "ddcodec": __version__,
              "cases": args.cases, "seed": args.seed, "timeout_s": args.timeout,
              "seconds": round(seconds, 1), "rows": rows, "verdict": verdict,
              "pass": ok, "examples": examples}
    write_record(Path(args.out), "fuzz", record)
    lines = ["## Decoder fuzzing", "",
             f"`python benchmarks/fuzz.py` ({record['date']}, {record['machine']}, one thread, "
             f"{seconds / 60:.1f} min): {total['cases']:,} mutated files decoded in one process, "
             f"each with a {args.timeout:g} s limit. *plain*: random byte damage (bit flips, "
             "bytes set, truncation, insertions, deletions, scattered bytes, hostile length "
             "fields), checksums left alone; *resealed*: the same damage with the header and "
             "file CRCs recomputed, so it reaches every parser behind them; *hostile-header*: "
             "a valid, resealed header announcing hostile sizes (images per class up to 10^7, "
             "8192-pixel sides, 64 channels, 100,000 classes, 16 levels, other decoders). "
             "*same*/*different*: decoded, to the original images or to others (for resealed "
             "damage that is expected: a changed name or mean is a valid file); *no-op*: the "
             "mutation left the file unchanged (a latent-only header field on a pixel file), not "
             "decoded.", "",
             "| file | mode | cases | no-op | rejected | decoded same | decoded different "
             "| crashes | hangs |", "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['file']} | {r['mode']} | {r['cases']:,} | {r['unchanged']:,} | "
                     f"{r['rejected']:,} | "
                     f"{r['decoded_same']:,} | {r['decoded_different']:,} | {r['crash']} | "
                     f"{r['hang']} |")
    lines += ["", f"Result: **{verdict['crashes']} crashes, {verdict['hangs']} hangs, "
                  f"{silent} silent wrong decodes** among the unsealed mutations, peak memory "
                  f"{above_idle:.0f} MB above the idle process (limit 1,024 MB). Every rejection "
                  "is a one-line `DDCodecError`. Resealed damage that decodes to other images "
                  "is only possible where no checksum covers the damaged values: in format "
                  "version 1, whose end record checksums the latents alone (so edited weights "
                  "go through); version 2 checksums every decoded value (weights, steps, "
                  "latents, pixels), so its resealed files either decode to the original "
                  "images (damage to names or metadata) or are refused."]
    replace_section(Path(args.out), "## Decoder fuzzing", "\n".join(lines))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
