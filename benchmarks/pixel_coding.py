"""Honest pixel coding, measured: one DM IPC-10 set (learnt float pixels) stored four ways, and
the time to load Tiny-ImageNet-200 (50,000 JPEGs) first and from the cache.

Rows: float32 as the papers count it (images only); the exact float values (`encode`, default
`--pixels lossless`); the set rounded to the 8-bit grid first and then coded losslessly (what a
user who rounds before encoding pays); and `--pixels 8bit` (the same rounding, declared lossy,
with its error recorded). Accuracies (shortened protocol) of the float set and of the rounded
one show what the rounding costs. Writes docs/BENCHMARKS.md (section "Pixel coding and image
folders") and docs/benchmarks/pixel_coding.json.

    python -m benchmarks.pixel_coding            # about 10 minutes on 2 cores
    python -m benchmarks.pixel_coding --quick    # a minute, prints only
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

from ddcodec import __version__, api
from ddcodec.bitstream.codec import plan_pixels
from benchmarks.harness import ROOT, benchmark_parser, replace_section, run, write_record

TINY_IMAGENET = ROOT.parent / "shared" / "data" / "tiny-imagenet-200"
HEADING = "## Pixel coding and image folders"


def coding_rows(args, tmp: Path) -> tuple[list[dict], dict]:
    set_path = tmp / "dm10.pt"
    started = time.perf_counter()
    distilled = api.distill("cifar10-subset", set_path, device="cpu", loss="dm", ipc=10,
                            iterations=args.iterations, batch_real=args.batch_real, seed=0)
    distill_seconds = time.perf_counter() - started
    classes, (c, h, w) = distilled.num_classes, distilled.image_shape
    rows = [{"storage": "float32, images only (the papers' count)", "lossless": True,
             "bpc": 32 * distilled.num_images * c * h * w / classes}]
    for label, pixels in (("exact floats: encode (default --pixels lossless)", "lossless"),
                          ("--pixels 8bit: rounded, declared lossy", "8bit")):
        data, report = api.encode(distilled, tmp / f"{pixels}.ddz", force=True, pixels=pixels)
        rows.append({"storage": label, "lossless": report["pixels"]["lossless"],
                     "bpc": 8 * len(data) / classes, "file_bytes": len(data),
                     "coding": report["pixels"]["coding"],
                     **{k: report["pixels"].get(k) for k in ("max_error", "mean_error",
                                                              "psnr_db")}})
    plan = plan_pixels(distilled, "8bit")
    rounded = replace(distilled, images=distilled.normalization.normalize(
        torch.from_numpy(plan.values)))
    data, report = api.encode(rounded, tmp / "grid.ddz", force=True)
    rows.insert(2, {"storage": "rounded to the 8-bit grid first, then encode (lossless)",
                    "lossless": True, "bpc": 8 * len(data) / classes, "file_bytes": len(data),
                    "coding": report["pixels"]["coding"]})
    accuracy = {}
    for name, source in (("float", tmp / "lossless.ddz"), ("8bit", tmp / "8bit.ddz")):
        result = api.measure(source, epochs=args.epochs, runs=args.runs, device="cpu")
        accuracy[name] = {"mean": 100 * result["accuracy_mean"],
                          "std": 100 * result["accuracy_std"]}
    return rows, {"distill_seconds": distill_seconds, "accuracy": accuracy,
                  "width": 32 if rows[1]["bpc"] > 16 * distilled.num_images * c * h * w
                  / classes else 16}


def load_times(root: Path) -> dict | None:
    """Tiny-ImageNet-200: a load with an empty cache, then one from the cache (fresh
    processes, so imports count as a user would see them)."""
    if not root.is_dir():
        return None
    import subprocess

    script = ("import time; t = time.perf_counter(); from ddcodec.data.datasets import load_dataset; "
              f"d = load_dataset('imagefolder:{root}'); "
              "print(time.perf_counter() - t, d.x_train.shape[0], d.x_test.shape[0])")
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "DDCODEC_CACHE": cache, "PYTHONPATH": str(ROOT)}
        out = []
        for _ in range(2):
            result = subprocess.run([sys.executable, "-c", script], capture_output=True,
                                    text=True, env=env, check=True, cwd=tempfile.gettempdir())
            seconds, train, test = result.stdout.split()
            out.append(float(seconds))
        cache_bytes = sum(p.stat().st_size for p in Path(cache).iterdir())
    return {"first_s": out[0], "cached_s": out[1], "train_images": int(train),
            "test_images": int(test), "cache_mb": cache_bytes / 2 ** 20}


def section(rows, extra, loading, args) -> str:
    base = rows[0]["bpc"]
    lines = [HEADING, "",
             f"Measured {dt.date.today()} on {platform.machine()} ({os.cpu_count()} cores), "
             f"torch {torch.__version__}, ddcodec {__version__}, by "
             "`python -m benchmarks.pixel_coding`.", "",
             f"One pixel DM IPC-10 set of the CIFAR-10 subset ({args.iterations} iterations, "
             f"{args.batch_real} real images per class, seed 0): learnt float pixels, off the "
             "8-bit grid, stored four ways. Bits per class count the whole file.", "",
             "| storage | exact? | bits/class | vs float32 | max error | mean error | PSNR |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        err = ("–", "–", "–") if r.get("max_error") is None else (
            f"{r['max_error']:.4g}", f"{r['mean_error']:.4g}", f"{r['psnr_db']:.2f} dB")
        exact = {True: "yes", False: "**no** (declared)"}[bool(r["lossless"])]
        if r["storage"].startswith("rounded"):
            exact = "yes, of the rounded set"
        lines.append(f"| {r['storage']} | {exact} | {r['bpc']:,.0f} | "
                     f"{r['bpc'] / base:.2f} | {' | '.join(err)} |")
    acc = extra["accuracy"]
    lines += ["", f"Errors are in normalised units (the set's space; one 8-bit step is about "
                  "0.02); PSNR on pixels in [0, 1], clipping included. The exact floats need "
                  f"float{extra['width']} here. Accuracy ({args.epochs} epochs × {args.runs} "
                  f"ConvNet-D3, shortened protocol): exact floats {acc['float']['mean']:.2f} ± "
                  f"{acc['float']['std']:.2f} %, rounded to 8 bits {acc['8bit']['mean']:.2f} ± "
                  f"{acc['8bit']['std']:.2f} %."]
    if loading:
        lines += ["", f"**Tiny-ImageNet-200** (`imagefolder:../shared/data/tiny-imagenet-200`, "
                      f"{loading['train_images']:,} training and {loading['test_images']:,} "
                      "validation JPEGs, 64×64), a fresh process each: first load (decoding, "
                      f"empty cache) {loading['first_s']:.1f} s; second load (from the cache, "
                      f"{loading['cache_mb']:,.0f} MB) {loading['cached_s']:.1f} s. The files "
                      "were in the OS page cache both times (a cold disk adds its read time to "
                      "the first load)."]
        if args.busy:
            lines[-1] += (" Another benchmark shared the 2 cores while these times were "
                          "taken: they are upper bounds.")
    return "\n".join(lines)


def main() -> None:
    parser = benchmark_parser(__doc__)
    parser.add_argument("--iterations", type=int, default=300)
    parser.add_argument("--batch-real", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=300)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--busy", action="store_true",
                        help="say in the report that another job shared the machine")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.quick:
        args.iterations, args.epochs, args.runs = 10, 5, 1
    with tempfile.TemporaryDirectory() as tmp:
        rows, extra = coding_rows(args, Path(tmp))
    loading = None if args.quick else load_times(TINY_IMAGENET)
    text = section(rows, extra, loading, args)
    print(text)
    if args.quick:
        return
    out = Path(args.out)
    write_record(out, "pixel_coding", {"date": str(dt.date.today()), "rows": rows, **extra,
                                       "tiny_imagenet_load": loading, "settings": vars(args)})
    replace_section(out, HEADING, text)


if __name__ == "__main__":
    run(main)
