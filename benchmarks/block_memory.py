"""Peak memory of one Tiny-ImageNet block against phase 1's candidates per decoder.

Phase 1 starts every decoder from C candidate initialisations (`--fit-candidates`, default 5);
each candidate holds its own decoder, latents and optimiser state for the block's classes. At
64 x 64 a block of 10 classes with 5 candidates took its process past 8 GB at real settings
(docs/BENCHMARKS.md, "Tiny-ImageNet-200, all classes"). This runs the Tiny run's own command
(benchmarks/tiny_all.py: its data, teacher, budget, labels and blocks) as a job of one block,
with short settings, once per C, each in a fresh process (peak resident memory is a process's),
with torch.compile and one thread as the Tiny blocks run, and checkpoints on, and reads each
part file's memory record: peak, allocated and mapped.

Short settings bound the comparison, not the real peak: the real blocks' peaks are in the Tiny
section's table of blocks.

    python -m benchmarks.block_memory           # about 10 minutes on one core
    python -m benchmarks.block_memory --quick   # minutes, 4 classes, prints only
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.harness import (CACHE, ROOT, TINY, TINY_BLOCKS, TINY_BUDGET, benchmark_parser,
                                class_subset, publish, run, tiny_distill_command, tiny_teacher)
from ddcodec import __version__

HEADING = "## Block memory: phase-1 candidates at 64 px"
CANDIDATES = (1, 5)
BLOCK = 19  # the block the Tiny run measured first (classes 190-199)
SHORT = {"fit_iterations": 32, "iterations": 4, "phase2_budget": 8, "batch_real": 32}
CHECKPOINT_EVERY = 8  # so the short run writes checkpoints, as the real one does


def one_block(data: str, teacher: Path, candidates: int, blocks: int, block: int,
              settings: dict, work: Path) -> dict:
    from ddcodec.distillation.blocks import load_part, part_path

    out = work / f"c{candidates}.ddz"
    command = tiny_distill_command(data, teacher, out, {**settings, "fit_candidates": candidates},
                              blocks, 1, TINY_BUDGET)
    command[command.index("--checkpoint-every") + 1] = str(CHECKPOINT_EVERY)
    command += ["--block", str(block)]
    env = {**os.environ, "DDCODEC_COMPILE": "1", "OMP_NUM_THREADS": "1"}
    started = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    if done.returncode not in (0, 3):  # 3: written, outside the budget's tolerance
        sys.exit(f"block_memory: {candidates} candidates failed (exit {done.returncode}): "
                 f"{done.stderr.strip().splitlines()[-1:]}")
    learnt = load_part(part_path(Path(f"{out}.parts"), block, blocks))["learnt"]
    row = {"candidates": candidates, "wall_s": time.perf_counter() - started,
           "block_s": learnt["block_seconds"], "peak_mb": learnt.get("process_peak_mb"),
           "allocated_mb": learnt.get("process_rss_anon_mb"),
           "mapped_mb": learnt.get("process_rss_file_mb")}
    print(f"{candidates} candidate(s): block {row['block_s']:.0f} s, peak "
          f"{row['peak_mb'] or 0:,.0f} MB, after it {row['allocated_mb'] or 0:,.0f} MB "
          f"allocated and {row['mapped_mb'] or 0:,.0f} MB mapped", flush=True)
    return row


def section(record: dict) -> str:
    s = record["settings"]
    lines = [HEADING, "",
             f"`python -m benchmarks.block_memory` ({record['date']}, ddcodec "
             f"{record['version']}, {record['machine']}): the Tiny-ImageNet-200 run's command "
             f"as one job of block {record['block']} of {record['blocks']} "
             f"({record['classes_per_block']} classes at 64 x 64, {record['budget']:,} bits per "
             "class, VQ labels), with short settings "
             f"({s['fit_iterations']} phase-1 and {s['iterations']} phase-2 iterations, at most "
             f"{s['phase2_budget']} with rate control, batch_real {s['batch_real']}, a "
             f"checkpoint every {record['checkpoint_every']} iterations), compiled, one thread, "
             "a fresh process per row; memory from the part file (peak resident, the process's "
             "own VmHWM; allocated and mapped after the block).", "",
             "| phase-1 candidates | block (s) | peak MB | allocated MB | mapped MB |",
             "|---:|---:|---:|---:|---:|"]
    for r in record["rows"]:
        lines.append(f"| {r['candidates']} | {r['block_s']:.0f} | {r['peak_mb'] or 0:,.0f} | "
                     f"{r['allocated_mb'] or 0:,.0f} | {r['mapped_mb'] or 0:,.0f} |")
    rows = {r["candidates"]: r for r in record["rows"]}
    few, many = rows[min(rows)], rows[max(rows)]
    if few["peak_mb"] and many["peak_mb"]:
        extra = many["peak_mb"] - few["peak_mb"]
        lines += ["", f"{many['candidates']} candidates peak {extra:,.0f} MB above "
                  f"{few['candidates']} "
                  f"({many['peak_mb'] / few['peak_mb']:.2f}x). Short settings give the "
                  "difference, not the real peak: a real block runs longer and rate control's "
                  "retrain rounds add to it (the Tiny section's table of blocks). The Tiny run "
                  "uses one candidate; benchmarks/warmup.py found that extra candidates buy no "
                  "accuracy."]
    return "\n".join(lines)


def main() -> None:
    parser = benchmark_parser(__doc__, threads=False)
    args = parser.parse_args()
    if not TINY.is_dir():
        sys.exit(f"block_memory: {TINY} not found (the shared data beside the checkout)")
    work, classes, blocks, block, settings = CACHE / "tiny-all", 200, TINY_BLOCKS, BLOCK, SHORT
    if args.quick:  # its own folder and a one-epoch teacher: the Tiny run's cache stays as it is
        work, classes, blocks, block = ROOT / "bench_runs" / "block-memory-quick", 4, 2, 1
        settings = {"fit_iterations": 8, "iterations": 2, "phase2_budget": 4, "batch_real": 8}
    root = class_subset(classes, work / "data")
    data = f"imagefolder:{root.relative_to(ROOT) if root.is_relative_to(ROOT) else root}"
    teacher = work / "teacher.pt"
    if not tiny_teacher(data, teacher, 1, args.quick):
        sys.exit(f"block_memory: {teacher} not found: `python -m benchmarks.tiny_all` trains "
                 "it first")
    with tempfile.TemporaryDirectory() as tmp:
        rows = [one_block(data, teacher, c, blocks, block, settings, Path(tmp))
                for c in CANDIDATES]
    record = {"date": str(dt.date.today()), "version": __version__,
              "machine": f"{platform.machine()}, {os.cpu_count()} cores",
              "budget": TINY_BUDGET, "blocks": blocks, "classes_per_block": classes // blocks,
              "block": block, "settings": settings,
              "checkpoint_every": CHECKPOINT_EVERY, "rows": rows}
    publish(args, "block_memory", HEADING, record, section(record))


if __name__ == "__main__":
    run(main)
