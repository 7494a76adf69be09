"""Encode and decode speed of .ddz files on CPU: a 10-class set with 10 images per class.

Makes a latent set (v0 per class, ARM 16x2, phase 1 only: speed does not depend on how well it
was trained) and a lossless pixel set of 10 real images per class, then times encode and decode
(median of --repeats, in this process) and reports symbols per second. Writes the "Bitstream
speed" section of docs/BENCHMARKS.md and docs/benchmarks/codec_speed.json.

    python -m benchmarks.codec_speed     # under a minute on 2 cores
"""

from __future__ import annotations

import datetime as dt
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch

from ddcodec import __version__, api
from ddcodec.bitstream.codec import decode_bytes, encode_set
from ddcodec.sets.setfile import load_set
from benchmarks.harness import benchmark_parser, replace_section, run, write_record


def timed(fn, repeats: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def measure(path: Path, repeats: int) -> dict:
    distilled = load_set(path)
    encode_s, (data, _) = timed(lambda: encode_set(distilled), repeats)
    decode_s, decoded = timed(lambda: decode_bytes(data, bits=False), repeats)
    h = decoded.header
    if h.latent:
        symbols = sum(g.size for g in decoded.latents)
        symbols += sum(int(q.q.numel()) for q in distilled.codec.weight_groups())
    else:
        symbols = h.num_images * h.channels * h.height * h.width
    return {"kind": "latent" if h.latent else "pixels", "images": h.num_images,
            "file_bytes": len(data), "symbols": symbols, "encode_s": encode_s,
            "decode_s": decode_s, "encode_msym_s": symbols / encode_s / 1e6,
            "decode_msym_s": symbols / decode_s / 1e6}


def main() -> None:
    parser = benchmark_parser(__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        latent = Path(tmp) / "latent.pt"
        api.distill("cifar10-subset", latent, device="cpu", param="latent", spc=10,
                    fit_iterations=100, fit_candidates=1, iterations=0)
        pixels = Path(tmp) / "pixels.pt"
        api.distill("cifar10-subset", pixels, loss="none", ipc=10)
        for path in (latent, pixels):
            rows.append(measure(path, args.repeats))
            r = rows[-1]
            print(f"{r['kind']}: {r['file_bytes']:,} B, encode {r['encode_s']:.3f} s, "
                  f"decode {r['decode_s']:.3f} s", flush=True)
    record = {"date": dt.date.today().isoformat(), "ddcodec_version": __version__,
              "machine": f"{platform.machine()}, {args.threads} torch threads",
              "args": vars(args), "rows": rows}
    out = Path(args.out)
    write_record(out, "codec_speed", record)
    lines = ["## Bitstream speed (CPU)", "",
             f"Produced by `python -m benchmarks.codec_speed` on {record['date']} (ddcodec "
             f"{__version__}, {record['machine']}): a 10-class set with 10 images per class of the "
             "CIFAR-10 subset, median of "
             f"{args.repeats} runs in one process. Encoding includes the closed-loop check (the "
             "encoder decodes its own file); decoding is what `ddcodec decode` does (every "
             "value checked, the images rebuilt, no ideal bits: only `info` and `measure` work "
             "those out). Symbols: latent values and weight integers, or pixels.", "",
             "| set | file bytes | symbols | encode (s) | decode (s) | encode Msym/s | "
             "decode Msym/s |", "|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        name = ("latent (v0 + ARM 16x2 per class)" if r["kind"] == "latent"
                else "pixels (lossless 8-bit)")
        lines.append(f"| {name} | {r['file_bytes']:,} | {r['symbols']:,} | {r['encode_s']:.3f} | "
                     f"{r['decode_s']:.3f} | {r['encode_msym_s']:.2f} | {r['decode_msym_s']:.2f} |")
    lines.append("")
    replace_section(out, "## Bitstream speed", "\n".join(lines))
    print(f"wrote {out}")


if __name__ == "__main__":
    run(main)
