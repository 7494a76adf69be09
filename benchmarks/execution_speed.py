"""How a CPU run executes, and what each choice buys: glibc's default handling of freed memory,
freed memory kept for reuse (what ddcodec does by default), and `--compile` on top of it.

Each configuration is measured in fresh processes (the allocator is set once per process), the
three taking turns, on the same images and seeds; medians of the steps after the first (the
first compiles):
1. Training under the evaluation protocol: random real images (CIFAR-10 subset, 50 per class
   at 32 px; Tiny-ImageNet-200, 3 per class of all 200 classes at 64 px), seconds per epoch.
2. Matching: a pixel DM iteration (CIFAR-10 subset, IPC 10, reference batch 256;
   Tiny-ImageNet-200, 20 classes at 64 px, IPC 1, reference batch 32).
And how far the compiled network's weights end from the eager one's after the same epochs:
the rounding, nothing else (reusing memory changes no bit).

Writes docs/benchmarks/execution_speed.json and the section "Execution speed" of
docs/BENCHMARKS.md.

    python -m benchmarks.execution_speed --threads 1    # about 15 minutes
    python -m benchmarks.execution_speed --quick        # a few minutes, to check the script
"""

from __future__ import annotations

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

import torch

from benchmarks.harness import ROOT, TINY, benchmark_parser, publish, run
from ddcodec import __version__
from ddcodec.devices import COMPILE_ENV, REUSE_MEMORY_ENV

HEADING = "## Execution speed: freed memory and compiled networks"
# name -> the environment a child process runs under
CONFIGS = {"glibc defaults": {REUSE_MEMORY_ENV: "0", COMPILE_ENV: "0"},
           "freed memory reused": {REUSE_MEMORY_ENV: "1", COMPILE_ENV: "0"},
           "reused + --compile": {REUSE_MEMORY_ENV: "1", COMPILE_ENV: "1"}}
# workload -> (kind, its settings; quick settings)
WORKLOADS = {
    "CIFAR-10 subset, training": ("training", dict(data="cifar10-subset", ipc=50, epochs=4),
                                  dict(data="cifar10-subset", ipc=5, epochs=3)),
    "Tiny-ImageNet-200, training": ("training", dict(data="tiny", ipc=3, epochs=3),
                                    dict(data="tiny", ipc=1, epochs=3)),
    "CIFAR-10 subset, pixel DM": ("matching", dict(data="cifar10-subset", classes=10, ipc=10,
                                                   batch_real=256, iterations=5),
                                  dict(data="cifar10-subset", classes=10, ipc=10,
                                       batch_real=32, iterations=3)),
    "Tiny-ImageNet-200, pixel DM": ("matching", dict(data="tiny", classes=20, ipc=1,
                                                     batch_real=32, iterations=5),
                                    dict(data="tiny", classes=20, ipc=1, batch_real=8,
                                         iterations=3)),
}


def _dataset(name: str, classes: int | None = None):
    from ddcodec.data.datasets import load_dataset

    data = load_dataset(f"imagefolder:{TINY}" if name == "tiny" else name)
    return data.of_classes(range(classes)) if classes else data


def child(kind: str, settings: dict, save: str | None) -> dict:
    """One measurement in this process, under the environment it was started with."""
    from ddcodec.devices import reuse_freed_memory

    reused = reuse_freed_memory()
    stamps: list[float] = []

    def stamp(*_):
        stamps.append(time.perf_counter())

    cpu = torch.device("cpu")
    if kind == "training":
        from ddcodec.distillation.random_subset import random_real_subset
        from ddcodec.training.trainer import EvalConfig, train_network

        dataset = _dataset(settings["data"])
        images, labels = random_real_subset(dataset, settings["ipc"], seed=0)
        net = train_network(images, labels, dataset.num_classes,
                            EvalConfig(epochs=settings["epochs"]), 0, cpu, on_epoch=stamp)
        if save:
            torch.save(net.state_dict(), save)
        size = int(images.shape[0])
    else:
        from ddcodec.distillation import DistillConfig
        from ddcodec.distillation.config import resolve
        from ddcodec.distillation.pixels import distill_pixels

        dataset = _dataset(settings["data"], settings["classes"])
        config = DistillConfig.of(param="pixels", loss="dm", ipc=settings["ipc"],
                                  iterations=settings["iterations"],
                                  batch_real=settings["batch_real"], seed=0)
        distill_pixels(dataset, resolve(config, dataset), cpu, stamp)
        size = settings["ipc"] * dataset.num_classes
    steps = [b - a for a, b in zip(stamps, stamps[1:])]  # the first step compiles: left out
    return {"steps_s": steps, "images": size, "pixels": dataset.image_shape[-1],
            "reused": reused}


def measure(workload: str, settings: dict, kind: str, turns: int, threads: int,
            folder: Path) -> dict:
    """Every configuration in fresh processes, taking turns; each one's median step."""
    steps: dict[str, list[float]] = {name: [] for name in CONFIGS}
    info: dict = {}
    for turn in range(turns):
        for name, env in CONFIGS.items():
            save = _weights(folder, workload, name) if kind == "training" else None
            command = [sys.executable, "-m", "benchmarks.execution_speed", "--child", kind,
                       json.dumps(settings), "--threads", str(threads)]
            if save:
                command += ["--save", str(save)]
            done = subprocess.run(command, env={**os.environ, **env}, cwd=ROOT, check=True,
                                  capture_output=True, text=True)
            result = json.loads(done.stdout.strip().splitlines()[-1])
            steps[name] += result["steps_s"]
            info = {k: result[k] for k in ("images", "pixels")}
    medians = {name: statistics.median(times) for name, times in steps.items()}
    row = {"workload": workload, "kind": kind, **info, **settings, "median_step_s": medians}
    base = medians["glibc defaults"]
    row["speedup"] = {name: base / value for name, value in medians.items()}
    if kind == "training":
        eager = torch.load(_weights(folder, workload, "freed memory reused"))
        fast = torch.load(_weights(folder, workload, "reused + --compile"))
        row["compiled_weight_difference"] = max(float((w - fast[k]).abs().max())
                                                for k, w in eager.items())
    print(f"{workload}: " + ", ".join(f"{name} {medians[name]:.2f} s "
                                      f"({row['speedup'][name]:.2f}x)" for name in CONFIGS),
          flush=True)
    return row


def _weights(folder: Path, workload: str, config: str) -> Path:
    """Where a child saves the network it trained for this workload and configuration."""
    return folder / "".join(c if c.isalnum() else "-" for c in f"{workload}-{config}.pt")


def section(record: dict) -> str:
    names = list(CONFIGS)
    lines = [HEADING, "",
             f"`python -m benchmarks.execution_speed` ({record['date']}, ddcodec "
             f"{record['version']}, torch {record['torch']}, {record['machine']}, "
             f"{record['wall_s'] / 60:.0f} min; raw record docs/benchmarks/"
             "execution_speed.json). Three ways to run the same steps on CPU, each in fresh "
             "processes, taking turns on the same images and seeds; median seconds per step "
             "(an epoch, or a DM iteration), the first step left out (it compiles), and the "
             "speed-up over glibc's defaults:",
             "",
             "* glibc defaults: every freed block above glibc's mmap threshold goes back to "
             "the kernel, and the next batch faults fresh zeroed pages in;",
             "* freed memory reused: what the command line, the benchmarks and the tests do "
             "(`ddcodec.devices.reuse_freed_memory`; DDCODEC_REUSE_MEMORY=0 turns it off). "
             "The same bits; the process keeps its peak memory until it exits;",
             "* reused + `--compile` (DDCODEC_COMPILE=1): the evaluation networks and "
             "distribution matching's networks through torch.compile. The same arithmetic "
             "summed in another order: the last column is how far its weights end from the "
             "eager network's. The teacher and the codec stay eager.", "",
             "| workload | images | pixels | " + " | ".join(names) + " | compiled weights "
             "differ by |", "|---|---:|---:|" + "---:|" * len(names) + "---:|"]
    for r in record["rows"]:
        cells = " | ".join(f"{r['median_step_s'][n]:.2f} s ({r['speedup'][n]:.2f}x)"
                           for n in names)
        drift = r.get("compiled_weight_difference")
        lines.append(f"| {r['workload']} | {r['images']:,} | {r['pixels']} | {cells} | "
                     f"{'–' if drift is None else f'{drift:.1e}'} |")
    lines += ["", "Compiling costs tens of seconds per batch shape and process (torch keeps the "
              "kernels in its cache, so a later process compiles faster). Figures measured with "
              "and without `--compile` differ as two equally good roundings do, within the "
              "seed-to-seed spread."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = benchmark_parser(__doc__)
    parser.add_argument("--child", nargs=2, metavar=("KIND", "SETTINGS"),
                        help="(internal) measure one workload in this process")
    parser.add_argument("--save", help="(internal) where a child saves its trained weights")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.child:
        kind, settings = args.child
        print(json.dumps(child(kind, json.loads(settings), args.save)))
        return
    started = time.perf_counter()
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for workload, (kind, settings, quick) in WORKLOADS.items():
            if "tiny" in (quick if args.quick else settings)["data"] and not TINY.is_dir():
                continue
            rows.append(measure(workload, quick if args.quick else settings, kind,
                                1 if args.quick else 2, args.threads, Path(folder)))
    record = {"date": dt.date.today().isoformat(), "version": __version__,
              "torch": torch.__version__,
              "machine": f"{platform.machine()}, {args.threads} torch thread(s)",
              "wall_s": time.perf_counter() - started, "rows": rows}
    publish(args, "execution_speed", HEADING, record, section(record))


if __name__ == "__main__":
    run(main)
