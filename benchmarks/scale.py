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

    python -m benchmarks.scale            # about 1 hour on 2 cores
    python -m benchmarks.scale --quick    # minutes, tiny settings, to check the script
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.harness import (ROOT, TINY, benchmark_parser, median_whole_block_seconds,
                                read_record, replace_section, run, spread, whole_blocks,
                                write_record)

HEADING = "## Scale: blocks and processes"


# runs `python -m ddcodec ARGS` and prints its own peak resident memory on exit (VmHWM:
# ru_maxrss would start from this process's mark, see ddcodec.memory)
PEAK = ("import atexit, runpy, sys; from ddcodec.memory import peak_mb; atexit.register("
        "lambda: sys.stderr.write(f'\\nPEAK_MB {peak_mb()}\\n')); "
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
    peaks = [float(line.split()[1]) for line in done.stderr.splitlines()
             if line.startswith("PEAK_MB ") and line.split()[1] != "None"]
    return {"seconds": seconds, "peak_mb": peaks[-1] if peaks else None,
            "stdout": done.stdout[-4000:], "stderr": done.stderr[-4000:]}


LOAD = ("import json, sys, time; from ddcodec.data.datasets import load_dataset; "
        "from ddcodec.memory import peak_mb; "
        "from ddcodec.data import folder_cache; before = set(folder_cache.cache_dir().glob('*')); "
        "size = tuple(map(int, sys.argv[2].split('x'))) if len(sys.argv) > 2 else None; "
        "t = time.perf_counter(); load_dataset(sys.argv[1], resize=size); "
        "print(json.dumps({'seconds': time.perf_counter() - t, 'peak_mb': peak_mb(), "
        "'decoded': set(folder_cache.cache_dir()"
        ".glob('*')) != before}))")


def load_once(data: str, resize: str | None = None) -> dict:
    """Load a tree in a fresh process first, so the distillation that follows finds it cached
    (memory-mapped); returns that load's seconds, peak and whether it had to decode."""
    done = timed(["-c", LOAD, data, *([resize] if resize else [])], threads=2)
    return json.loads(done["stdout"].strip().splitlines()[-1])


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
    first_load = load_once(data)
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
    blocks = [{"seconds": b["block_seconds"], "peak_mb": b["process_peak_mb"],
               "anon_mb": b.get("process_rss_anon_mb"), "file_mb": b.get("process_rss_file_mb")}
              for b in per_block if "block_seconds" in b]
    return {"classes": summary["num_classes"], "images": summary["num_images"],
            "block_seconds": [b["seconds"] for b in blocks],
            "block_peak_mb": [b["peak_mb"] for b in blocks],
            "block_anon_mb": [b["anon_mb"] for b in blocks],
            "block_file_mb": [b["file_mb"] for b in blocks],
            "median_block_s": statistics.median(b["seconds"] for b in blocks) if blocks else None,
            "blocks": args.blocks, "distill_s": run["seconds"],
            "seconds_per_block": run["seconds"] / args.blocks,
            "seconds_per_class": run["seconds"] / summary["num_classes"],
            "distill_peak_mb": run["peak_mb"], "bpc": summary["bpc"],
            "decode_s": decoded["seconds"], "measure_s": measured["seconds"],
            "measure_epochs": args.epochs, "accuracy_percent": report["accuracy_mean_percent"],
            "blocks_recorded": len(per_block), "first_load": first_load}


def fewer_classes(args, work: Path) -> dict:
    """The same settings on the first 2 blocks' classes only: what the 200-class process's
    memory adds over a 20-class one (with the cached tree memory-mapped, only what it maps
    besides its classes' images)."""
    from benchmarks.harness import class_subset

    classes = 2 * 200 // args.blocks
    data = f"imagefolder:{class_subset(classes, work / f'tiny{classes}')}"
    load_once(data)
    run = timed(["-m", "ddcodec", "distill", "--data", data, "--param", "latent",
                 "--blocks", "2", "--spc", str(args.tiny_spc),
                 "--fit-iterations", str(args.fit_iterations),
                 "--iterations", str(args.iterations), "--batch-real", str(args.batch_real),
                 "-o", str(work / "few.ddz"), "--json"], threads=2)
    blocks = json.loads(run["stdout"].strip().splitlines()[-1])["provenance"]["per_block"]
    return {"classes": classes, "blocks": 2, "distill_s": run["seconds"],
            "distill_peak_mb": run["peak_mb"],
            "block_seconds": [b["block_seconds"] for b in blocks],
            "block_peak_mb": [b["process_peak_mb"] for b in blocks]}


def at_128(args, work: Path) -> dict:
    """The paper's ImageNet-subset size: 10 Tiny-ImageNet classes upscaled to 128 x 128 with
    --resize, distilled in 2 blocks, encoded, decoded and measured briefly."""
    from benchmarks.harness import class_subset

    data = f"imagefolder:{class_subset(10, work / 'tiny10')}"
    out = work / "r128.ddz"
    load_once(data, "128x128")
    run = timed(["-m", "ddcodec", "distill", "--data", data, "--resize", "128x128",
                 "--param", "latent", "--blocks", "2", "--spc", str(args.tiny_spc),
                 "--fit-iterations", str(args.fit_iterations),
                 "--iterations", str(args.iterations), "--batch-real", str(args.batch_real),
                 "-o", str(out), "--json"], threads=2)
    summary = json.loads(run["stdout"].strip().splitlines()[-1])
    measured = timed(["-m", "ddcodec", "measure", str(out), "--epochs", str(args.epochs),
                      "--runs", "1", "--json"], threads=2)
    report = json.loads(measured["stdout"].strip().splitlines()[-1])
    blocks = summary["provenance"]["per_block"]
    return {"image_shape": report["image_shape"], "distill_s": run["seconds"],
            "classes": 10, "blocks": 2, "block_seconds": [b["block_seconds"] for b in blocks],
            "distill_peak_mb": run["peak_mb"], "bpc": summary["bpc"],
            "measure_s": measured["seconds"], "accuracy_percent": report["accuracy_mean_percent"]}


def section(result: dict, args) -> str:
    s, t = result["speedup"], result.get("tiny")
    lines = [HEADING, "",
             f"Measured {result['date']} with `python -m benchmarks.scale` on {result['machine']} "
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
                  f"| peak memory of the distil process | {t['distill_peak_mb']:,.0f} MB "
                  f"({'within' if t['distill_peak_mb'] <= 8 * 1024 else '**over**'} 8 GB) |",
                  f"| its peak after the first block / after the last | "
                  f"{t['block_peak_mb'][0]:,.0f} / {t['block_peak_mb'][-1]:,.0f} MB |"
                  if t.get("block_peak_mb") else "| per-block peaks | not reported |",
                  f"| decode | {t['decode_s']:.1f} s |",
                  f"| measure ({t['measure_epochs']} epochs x 1) | {t['measure_s']:.0f} s, "
                  f"{t['accuracy_percent']:.2f} % |"]
    f = result.get("fewer_classes")
    if f:
        lines += ["", f"The same settings on the first {f['classes']} classes ({f['blocks']} "
                      f"blocks): peak {f['distill_peak_mb']:,.0f} MB, against "
                      f"{t['distill_peak_mb']:,.0f} MB for all {t['classes']}: the cached tree "
                      "is memory-mapped, so a process holds the images of the classes it reads, "
                      "not the split; see [scale.md](scale.md)."]
    r = result.get("resize128")
    if r:
        lines += ["", f"128 × 128 (`--resize 128x128`, 10 Tiny-ImageNet classes upscaled, 2 "
                      f"blocks, the same short settings): image shape {r['image_shape']}, "
                      f"{r['bpc']:,.0f} bits per class, distil {r['distill_s'] / 60:.1f} min at "
                      f"a peak of {r['distill_peak_mb']:,.0f} MB, measure {r['measure_s']:.0f} s "
                      f"({r['accuracy_percent']:.1f} %)."]
    return "\n".join(lines)


def memory_over_blocks(t: dict) -> str:
    """Whether a process's memory grows with the blocks it has done, from the resident memory
    recorded after each block: the peak, and (where recorded) its allocated and mapped parts."""
    per_block = t["classes"] // t["blocks"]
    first, last = t["block_peak_mb"][0], t["block_peak_mb"][-1]
    later = t["classes"] - per_block
    train_mb = TINY_TRAIN_PER_CLASS * 64 * 64 * 3 / 2 ** 20
    text = (f"* Over the blocks of one process: its peak resident memory was {first:,.0f} MB "
            f"after the first block and {last:,.0f} MB after the last, "
            f"{(last - first) / later:.2f} MB more per class read since, against "
            f"{train_mb:.2f} MB of uint8 training images per class.")
    anon, mapped = t.get("block_anon_mb") or [None], t.get("block_file_mb") or [None]
    if anon[0] is None or anon[-1] is None:
        return text + (" The growth matches the pages of the memory-mapped image cache the "
                       "process has read (resident, but shared and reclaimable); this run did "
                       "not record resident memory split into allocated and mapped, which "
                       "later runs do per block.")
    return text + (f" Allocated (anonymous) memory after the first block {anon[0]:,.0f} MB, "
                   f"after the last {anon[-1]:,.0f} MB; pages of mapped files {mapped[0]:,.0f} "
                   f"-> {mapped[-1]:,.0f} MB: "
                   + ("the growth is the image cache the process has read, not held memory."
                      if anon[-1] - anon[0] < 0.25 * (last - first) else
                      "**allocated memory grows with the blocks done**."))


TINY_TRAIN_PER_CLASS = 200
IMAGENET_TRAIN_PER_CLASS = 1300  # ImageNet-1K: 1,281,167 training images, at most 1,300 a class
IMAGENET_VAL_PER_CLASS = 50


def real_settings_lines(record_path: Path, predicted_s: float | None) -> list[str]:
    """The model rebuilt from benchmarks/tiny_all.py's real-settings run (its blocks' own time
    and memory, blocks resumed part-way left out of the time), and how far the per-step
    prediction above was off; nothing until that run has published its record."""
    if not record_path.is_file():
        return ["", "## At real settings", "",
                "Not measured yet: `python -m benchmarks.tiny_all` (Tiny-ImageNet-200, all "
                "classes, real settings, in blocks) rebuilds this model from its blocks when "
                "its record exists."]
    record = json.loads(record_path.read_text())
    blocks = record.get("blocks", [])
    per_class = median_whole_block_seconds(record)
    if per_class is None:
        return []
    whole = whole_blocks(record)
    peak = max(b["peak_mb"] or 0 for b in blocks)
    s = record["settings"]
    nproc = record["nproc"]  # the torchrun job's processes
    total_h = 1000 * per_class / 3600
    lines = ["", "## At real settings", "",
             f"`python -m benchmarks.tiny_all` ({record['date']}): Tiny-ImageNet-200, all 200 "
             f"classes at {record['budget']:,} bits per class, {s['fit_iterations']} phase-1 and "
             f"{s['iterations']} phase-2 iterations (at most {s['phase2_budget']} with rate "
             f"control), {s.get('fit_candidates', 5)} phase-1 candidate(s) per decoder"
             + (f", lambda from {s['lmbda']:g}" if "lmbda" in s else "")
             + f", batch_real {s['batch_real']}, {len(blocks)} of "
             f"{record.get('blocks_count', len(blocks))} blocks of 10 classes so far, each in a "
             f"process of one thread ({nproc} under torchrun, or a job of its own): median "
             f"**{per_class:.0f} s per class** per process (over {len(whole)} blocks run "
             f"whole{spread(record)}), rate control and weight quantisation included; peak "
             f"memory per process **{peak:,.0f} MB** "
             f"({'within' if peak < 8192 else 'over'} the 8 GB a process may take).", "",
             "| ImageNet-1K, 64 × 64, real settings | per class | 1 process | 8 processes | "
             "64 processes |", "|---|---:|---:|---:|---:|",
             f"| measured per block | {per_class:.0f} s | {total_h:.0f} h | {total_h / 8:.1f} h | "
             f"{total_h / 64:.1f} h |"]
    if predicted_s:
        lines += ["", f"The per-step prediction above said {predicted_s:.0f} s per class; the "
                  f"blocks took {per_class / predicted_s:.1f} times that. The prediction leaves "
                  "out rate control's probes and retrain rounds, weight quantisation and the "
                  "soft labels, and its steps were timed at another thread count."]
    return lines


def scale_model(result: dict) -> str:
    """docs/scale.md: time and memory for ImageNet-1K at 64 and 128 pixels on N processes,
    from this run's Tiny-ImageNet measurements (and the per-step costs of
    benchmarks/speed.py's record), with every assumption stated."""
    t, f, r = result["tiny"], result["fewer_classes"], result["resize128"]
    per_block = t["classes"] // t["blocks"]
    s64 = t["median_block_s"] / per_block
    s128 = statistics.median(r["block_seconds"]) / (r["classes"] // r["blocks"])
    held = (t["distill_peak_mb"] - f["distill_peak_mb"]) / (t["classes"] - f["classes"])
    raw64 = 250 * 64 * 64 * 3 / 2 ** 20  # MB of uint8 train + test images per Tiny class
    speed_path = ROOT / "docs" / "benchmarks" / "speed.json"
    steps, speed_machine = {}, "unknown threads"
    if speed_path.is_file():
        speed_record = json.loads(speed_path.read_text())
        speed_machine = speed_record.get("machine", speed_machine)
        for row in speed_record["distill"]:
            if row["set"] == "Tiny-ImageNet":
                steps[(row["classes"], row["pixels"])] = row
    lines = [
        "# Scale: a time and memory model for ImageNet-1K", "",
        f"Generated by `python -m benchmarks.scale` on {result['date']} ({result['machine']}, "
        "2 CPU cores, no GPU) from the measurements in "
        "[BENCHMARKS.md](BENCHMARKS.md#scale-blocks-and-processes); every figure below is "
        "either measured there or derived here with the assumption it rests on.", "",
        "## What was measured", "",
        f"* Tiny-ImageNet-200 at 64 × 64, all {t['classes']} classes in {t['blocks']} blocks of "
        f"{per_block} in one process (2 threads), short settings "
        f"({result['settings']['tiny_spc']} samples per class, "
        f"{result['settings']['fit_iterations']} phase-1 and "
        f"{result['settings']['iterations']} phase-2 iterations, batch_real "
        f"{result['settings']['batch_real']}): median **{t['median_block_s']:.0f} s per block, "
        f"{s64:.1f} s per class**, end to end {t['distill_s'] / 60:.1f} min.",
        memory_over_blocks(t),
        f"* Against the classes in the data: the {t['classes']}-class process peaked at "
        f"{t['distill_peak_mb']:,.0f} MB, the same settings on {f['classes']} classes at "
        f"{f['distill_peak_mb']:,.0f} MB: **{held:.2f} MB per class** more, where holding the "
        f"uint8 images would cost {raw64:.1f} MB per class (200 train + 50 val at 64 × 64 × 3). "
        "A decoded tree is cached and memory-mapped (ddcodec.data.folder_cache), and distillation "
        "reads only its classes' images, so a process holds those, not the split. Of a "
        "process's peak, about 0.7 GB is torch and torchvision themselves.",
        f"* The first load of the tree on a machine decodes all of it once and caches it: "
        f"{t['first_load']['seconds']:.0f} s at a peak of {t['first_load']['peak_mb']:,.0f} MB "
        + ("(this run decoded it)." if t['first_load']['decoded'] else
           "(this run found it cached; a first decode holds the whole split once)."),
        f"* 128 × 128 (`--resize 128x128`, 10 classes in 2 blocks, same settings): "
        f"{s128:.1f} s per class (**{s128 / s64:.1f}x** the 64-pixel cost; 4x the pixels), "
        f"peak {r['distill_peak_mb']:,.0f} MB.",
    ]
    if (10, 64) in steps and (100, 64) in steps:
        a, b = steps[(10, 64)], steps[(100, 64)]
        lines += [
            f"* Per-step costs at 64 px with 10 images per class (benchmarks/speed.py, "
            f"{speed_machine}): 10 "
            f"classes in one trainer, phase-1 step {a['phase1_step_s']:.3f} s and DM iteration "
            f"{a['latent_iteration_s']:.2f} s; 100 classes in one trainer "
            f"{b['phase1_step_s']:.2f} s and {b['latent_iteration_s']:.1f} s, i.e. "
            f"{b['phase1_step_s'] / a['phase1_step_s'] / 10:.1f}x and "
            f"{b['latent_iteration_s'] / a['latent_iteration_s'] / 10:.1f}x more per class. "
            "Blocks of about 10 classes are the cheaper way to spend a core, besides bounding "
            "memory."]
    lines += ["", "## The model", "",
              "Blocks are independent (every random draw is keyed by class; each loss term is per "
              "class), so with B blocks on N processes (B ≥ N) the distillation's wall-clock is "
              "the blocks' total divided by N, plus a merge and one encode on rank 0 (seconds "
              "here: the 200-class encode is part of the end-to-end figure above).", "",
              "* time ≈ classes × s(res, settings) / N, with s measured per class per process;",
              "* memory per process ≈ torch + one block's working set + its classes' images "
              "(the cached tree is mapped, not held); the first load on a machine decodes the "
              "whole split once (the last column: uint8, train and val).", "",
              "| ImageNet-1K | per class | 1 process | 8 processes | 64 processes | "
              "first decode, once per machine |", "|---|---:|---:|---:|---:|---:|"]
    for res, per_class in ((64, s64), (128, s128)):
        split_gb = 1000 * (IMAGENET_TRAIN_PER_CLASS + IMAGENET_VAL_PER_CLASS) * res * res * 3 / 1e9
        total_h = 1000 * per_class / 3600
        lines.append(f"| {res} × {res}, short settings | {per_class:.1f} s | {total_h:.1f} h | "
                     f"{total_h / 8:.1f} h | {total_h / 64 * 60:.0f} min | {split_gb:.1f} GB |")
    if (10, 64) in steps:
        a = steps[(10, 64)]
        fit, joint = 800, 150
        per_class = (fit * a["phase1_step_s"] + joint * a["latent_iteration_s"]) / 10
        total_h = 1000 * per_class / 3600
        lines += ["", f"At the curve's settings ({fit} phase-1 and {joint} phase-2 iterations, 10 "
                      f"images per class, blocks of 10 classes), the per-step costs above give "
                      f"about {per_class:.0f} s per class at 64 px before weight quantisation and "
                      f"rate control: {total_h:.0f} h for ImageNet-1K on one process "
                      f"({speed_machine}, as speed.py ran), "
                      f"{total_h / 64:.1f} h on 64 (and about {s128 / s64:.1f}x that at 128 px, "
                      "the ratio measured above)."]
    lines += real_settings_lines(ROOT / "docs" / "benchmarks" / "tiny_all.json",
                                 per_class if (10, 64) in steps else None)
    lines += ["", "## Assumptions and limits", "",
              "* CPU only. No GPU has been lent to this project yet, so the model has no GPU "
              "figure; on GPUs divide the per-class time by the GPU/CPU ratio of "
              "`benchmarks/speed.py` run there (one device per local rank, NCCL).",
              f"* ImageNet-1K holds at most {IMAGENET_TRAIN_PER_CLASS:,} training images per "
              f"class (1,281,167 in all) and {IMAGENET_VAL_PER_CLASS} validation images. The "
              "per-class time does not depend on how many real images a class has (each "
              "step samples batch_real of them), only the memory does.",
              "* The training split is decoded once per machine (its cache is keyed by every "
              "file's name, size and date) and then memory-mapped by every process: processes "
              "on one node share the pages they read through the page cache. That first "
              "decode holds the split in memory (the table's last column): let one process do it "
              "(e.g. a job with `--block 0`) before starting N, or they each decode it at "
              "once.",
              "* Linear in classes: measured per block of 10 classes, and blocks do not "
              "interact until the merge. The merge holds every block's payload (kilobytes per "
              "class) and encodes once.",
              "* The short settings check the pipeline and the costs; the accuracy they reach is "
              "not a result (see BENCHMARKS.md for accuracy at real settings)."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = benchmark_parser(__doc__, ROOT, threads=False)  # each run sets its own threads
    parser.add_argument("--no-tiny", action="store_true")
    parser.add_argument("--report-only", action="store_true",
                        help="Rewrite the section and docs/scale.md from the last record "
                             "(docs/benchmarks/scale.json); run nothing.")
    args = parser.parse_args()
    if args.report_only:
        record = read_record(Path(args.out), "scale")
        publish_scale(record, argparse.Namespace(**record["settings"]), Path(args.out))
        return
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
            result["fewer_classes"] = fewer_classes(args, Path(tmp))
            result["resize128"] = at_128(args, Path(tmp))
    if args.quick:
        print(section(result, args))
        if "resize128" in result:
            print(scale_model(result))
        return
    write_record(Path(args.out), "scale", result)
    publish_scale(result, args, Path(args.out))


def publish_scale(result: dict, args, out: Path) -> None:
    """Print the section and the model; put the section in the report and the model in
    docs/scale.md beside it."""
    text = section(result, args)
    print(text)
    replace_section(out, HEADING, text)
    if "resize128" in result:
        model = scale_model(result)
        print(model)
        (out.parent / "scale.md").write_text(model)


if __name__ == "__main__":
    run(main)
