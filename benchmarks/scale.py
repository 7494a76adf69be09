"""Distillation in blocks at scale, on 2 CPU cores: processes against wall-clock, and memory and
time per block on all 200 classes of Tiny-ImageNet (64 x 64).

1. Speed-up: the CIFAR-10 subset, latent DM with per-class decoders in 2 blocks, run as one
   process with 2 threads and as 2 torchrun processes (gloo) with 1 thread each; and the same
   bytes from 1 and 2 processes at 1 thread each.
2. Tiny-ImageNet-200 end to end with `--blocks 20` (10 classes per block; short settings,
   stated): peak memory of the process, time per block, then encode, decode and a short
   measure of the merged 200-class file.
3. 128 x 128, the paper's ImageNet-subset size: 10 classes with `--resize 128x128`, end to end.

Every run is a fresh process (`python -m ddcodec ...`), its peak resident memory read from
getrusage. Writes docs/benchmarks/scale.json and the section "Scale: blocks and processes" of
docs/BENCHMARKS.md.

    python benchmarks/scale.py            # about 1 hour on 2 cores
    python benchmarks/scale.py --quick    # minutes, tiny settings, to check the script
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from report import TINY, benchmark_parser, replace_section, write_record  # noqa: E402

HEADING = "## Scale: blocks and processes"


# runs `python -m ddcodec ARGS` and prints its own peak resident memory on exit
PEAK = ("import atexit, resource, runpy, sys; atexit.register(lambda: sys.stderr.write("
        "f'\\nPEAK_KB {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}\\n')); "
        "sys.argv = ['ddcodec'] + sys.argv[1:]; runpy.run_module('ddcodec', run_name='__main__')")


def timed(args: list[str], threads: int) -> dict:
    """A fresh process: wall seconds, peak resident memory (MB, ddcodec runs), its output."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    command = ["-c", PEAK, *args[2:]] if args[:2] == ["-m", "ddcodec"] else args
    started = time.perf_counter()
    done = subprocess.run([sys.executable, *command], cwd=ROOT, env=env, capture_output=True,
                          text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"scale: {' '.join(args[:4])} ... failed:\n{done.stderr[-3000:]}")
    peaks = [int(line.split()[1]) for line in done.stderr.splitlines()
             if line.startswith("PEAK_KB ")]
    return {"seconds": seconds, "peak_mb": peaks[-1] / 1024 if peaks else None,
            "stdout": done.stdout[-4000:], "stderr": done.stderr[-4000:]}


def speedup(args, work: Path) -> dict:
    common = ["distill", "--data", "cifar10-subset", "--param", "latent", "--blocks", "2",
              "--spc", str(args.spc), "--fit-iterations", str(args.fit_iterations),
              "--iterations", str(args.iterations), "--batch-real", str(args.batch_real), "-q"]
    torchrun = ["-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                "-m", "ddcodec"]
    one = timed(["-m", "ddcodec", *common, "-o", str(work / "one.ddz")], threads=2)
    two = timed([*torchrun, *common, "-o", str(work / "two.ddz")], threads=1)
    same_a = timed(["-m", "ddcodec", *common, "-o", str(work / "one_t1.ddz")], threads=1)
    identical = (work / "one_t1.ddz").read_bytes() == (work / "two.ddz").read_bytes()
    return {"one_process_2_threads_s": one["seconds"], "two_processes_1_thread_s": two["seconds"],
            "speedup": one["seconds"] / two["seconds"],
            "one_process_1_thread_s": same_a["seconds"],
            "bytes_identical_1_vs_2_processes_at_1_thread": identical}


def tiny(args, work: Path) -> dict:
    data = f"imagefolder:{TINY}"
    out = work / "tiny.ddz"
    run = timed(["-m", "ddcodec", "distill", "--data", data, "--param", "latent",
                 "--blocks", str(args.blocks), "--spc", str(args.tiny_spc),
                 "--fit-iterations", str(args.fit_iterations),
                 "--iterations", str(args.iterations), "--batch-real", str(args.batch_real),
                 "-o", str(out), "--json"], threads=2)
    summary = json.loads(run["stdout"].strip().splitlines()[-1])
    decoded = timed(["-m", "ddcodec", "decode", str(out), "-o", str(work / "tiny.pt"), "-q"],
                    threads=2)
    measured = timed(["-m", "ddcodec", "measure", str(out), "--epochs", str(args.epochs),
                      "--runs", "1", "--json"], threads=2)
    report = json.loads(measured["stdout"].strip().splitlines()[-1])
    per_block = summary["provenance"].get("per_block", [])
    return {"classes": summary["num_classes"], "images": summary["num_images"],
            "blocks": args.blocks, "distill_s": run["seconds"],
            "seconds_per_block": run["seconds"] / args.blocks,
            "seconds_per_class": run["seconds"] / summary["num_classes"],
            "distill_peak_mb": run["peak_mb"], "bpc": summary["bpc"],
            "decode_s": decoded["seconds"], "measure_s": measured["seconds"],
            "measure_epochs": args.epochs, "accuracy_percent": report["accuracy_mean_percent"],
            "blocks_recorded": len(per_block)}


def at_128(args, work: Path) -> dict:
    """The paper's ImageNet-subset size: 10 Tiny-ImageNet classes upscaled to 128 x 128 with
    --resize, distilled in 2 blocks, encoded, decoded and measured briefly."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from distribution import class_subset

    data = f"imagefolder:{class_subset(10, work / 'tiny10')}"
    out = work / "r128.ddz"
    run = timed(["-m", "ddcodec", "distill", "--data", data, "--resize", "128x128",
                 "--param", "latent", "--blocks", "2", "--spc", str(args.tiny_spc),
                 "--fit-iterations", str(args.fit_iterations),
                 "--iterations", str(args.iterations), "--batch-real", str(args.batch_real),
                 "-o", str(out), "--json"], threads=2)
    summary = json.loads(run["stdout"].strip().splitlines()[-1])
    measured = timed(["-m", "ddcodec", "measure", str(out), "--epochs", str(args.epochs),
                      "--runs", "1", "--json"], threads=2)
    report = json.loads(measured["stdout"].strip().splitlines()[-1])
    return {"image_shape": report["image_shape"], "distill_s": run["seconds"],
            "distill_peak_mb": run["peak_mb"], "bpc": summary["bpc"],
            "measure_s": measured["seconds"], "accuracy_percent": report["accuracy_mean_percent"]}


def section(result: dict, args) -> str:
    s, t = result["speedup"], result.get("tiny")
    lines = [HEADING, "",
             f"Measured {result['date']} with `python benchmarks/scale.py` on {result['machine']} "
             "(2 cores): every run a fresh process.", "",
             f"CIFAR-10 subset, latent DM, per-class decoders, `--blocks 2` ({args.spc} samples "
             f"per class, {args.fit_iterations} phase-1 and {args.iterations} phase-2 "
             f"iterations, batch_real {args.batch_real}):", "",
             "| run | wall seconds |", "|---|---:|",
             f"| 1 process, 2 threads | {s['one_process_2_threads_s']:.0f} |",
             f"| 2 torchrun processes (gloo), 1 thread each | "
             f"{s['two_processes_1_thread_s']:.0f} |",
             f"| 1 process, 1 thread | {s['one_process_1_thread_s']:.0f} |", "",
             f"Speed-up of 2 processes over 1 on these 2 cores: **{s['speedup']:.2f}x**. The "
             ".ddz from 1 process and from 2 is byte-identical at equal threads per process: "
             f"{'yes' if s['bytes_identical_1_vs_2_processes_at_1_thread'] else '**no**'}."]
    if t:
        lines += ["", f"Tiny-ImageNet-200, all {t['classes']} classes (64 × 64), `--blocks "
                      f"{t['blocks']}` in one process: {t['images']:,} images, "
                      f"{t['bpc']:,.0f} bits per class; short settings ({args.tiny_spc} samples "
                      f"per class, {args.fit_iterations} + {args.iterations} iterations), so the "
                      "accuracy is a check that the pipeline runs end to end, not a result.", "",
                  "| what | value |", "|---|---:|",
                  f"| distil, wall | {t['distill_s'] / 60:.1f} min |",
                  f"| per block ({t['classes'] // t['blocks']} classes) | "
                  f"{t['seconds_per_block']:.0f} s |",
                  f"| per class | {t['seconds_per_class']:.1f} s |",
                  f"| peak memory of the distil process | {t['distill_peak_mb']:,.0f} MB |",
                  f"| decode | {t['decode_s']:.1f} s |",
                  f"| measure ({t['measure_epochs']} epochs x 1) | {t['measure_s']:.0f} s, "
                  f"{t['accuracy_percent']:.2f} % |"]
    r = result.get("resize128")
    if r:
        lines += ["", f"128 × 128 (`--resize 128x128`, 10 Tiny-ImageNet classes upscaled, 2 "
                      f"blocks, the same short settings): image shape {r['image_shape']}, "
                      f"{r['bpc']:,.0f} bits per class, distil {r['distill_s'] / 60:.1f} min at "
                      f"a peak of {r['distill_peak_mb']:,.0f} MB, measure {r['measure_s']:.0f} s "
                      f"({r['accuracy_percent']:.1f} %)."]
    return "\n".join(lines)


def main() -> None:
    parser = benchmark_parser(__doc__, ROOT, threads=False)  # each run sets its own threads
    parser.add_argument("--no-tiny", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.spc, args.fit_iterations, args.iterations, args.batch_real = 1, 8, 2, 8
        args.tiny_spc, args.blocks, args.epochs = 1, 20, 1
    else:
        args.spc, args.fit_iterations, args.iterations, args.batch_real = 4, 200, 50, 32
        args.tiny_spc, args.blocks, args.epochs = 2, 20, 30
    result = {"date": str(dt.date.today()), "machine": platform.machine() + " " +
              platform.processor(), "settings": {k: v for k, v in vars(args).items()
                                                 if k != "out"}}
    with tempfile.TemporaryDirectory() as tmp:
        result["speedup"] = speedup(args, Path(tmp))
        if not args.no_tiny and TINY.is_dir():
            result["tiny"] = tiny(args, Path(tmp))
            result["resize128"] = at_128(args, Path(tmp))
    text = section(result, args)
    print(text)
    if args.quick:
        return
    write_record(Path(args.out), "scale", result)
    replace_section(Path(args.out), HEADING, text)


if __name__ == "__main__":
    main()
