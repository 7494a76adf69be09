"""What `--compile` buys: eager against compiled networks, side by side in one process.

1. Training under the evaluation protocol: random real images (CIFAR-10 subset, 50 per class at
   32 px; Tiny-ImageNet-200, 3 per class of all 200 classes at 64 px), one network per mode in
   turn (eager, compiled, eager, compiled), the same seed; the median epoch of each mode, the
   compiled mode's first epoch (compiling included) and the largest weight difference between
   the two modes' networks after the same epochs: the rounding, nothing else.
2. Matching: the median pixel DM iteration (CIFAR-10 subset, IPC 10, reference batch 256;
   Tiny-ImageNet, 20 classes at 64 px, IPC 1, reference batch 32), the modes in turn.

Writes docs/benchmarks/compile_speed.json and the section "Compiled networks" of
docs/BENCHMARKS.md.

    python -m benchmarks.compile_speed --threads 1      # about 10 minutes
    python -m benchmarks.compile_speed --quick          # a minute, to check the script
"""

from __future__ import annotations

import datetime as dt
import platform
import statistics
import time

import torch

from benchmarks.harness import TINY, benchmark_parser, publish, run
from ddcodec import __version__
from ddcodec.data.datasets import load_dataset
from ddcodec.devices import set_compiling
from ddcodec.distillation import DistillConfig
from ddcodec.distillation.config import resolve
from ddcodec.distillation.pixels import distill_pixels
from ddcodec.distillation.random_subset import random_real_subset
from ddcodec.training.trainer import EvalConfig, train_network

HEADING = "## Compiled networks (`--compile`)"
MODES = ("eager", "compiled")


def gaps(stamps: list[float]) -> list[float]:
    return [b - a for a, b in zip(stamps, stamps[1:])]


def training_row(name: str, dataset, ipc: int, epochs: int, turns: int) -> dict:
    """Epoch times of one network per mode in turn, on the same images and seed."""
    images, labels = random_real_subset(dataset, ipc, seed=0)
    config = EvalConfig(epochs=epochs)
    epoch_s = {mode: [] for mode in MODES}
    first_s, nets = {}, {}
    for turn in range(turns):
        for mode in MODES:
            set_compiling(mode == "compiled")
            started = time.perf_counter()
            stamps = [started]
            nets[mode] = train_network(images, labels, dataset.num_classes, config, 0,
                                       torch.device("cpu"),
                                       on_epoch=lambda _: stamps.append(time.perf_counter()))
            first_s.setdefault(mode, stamps[1] - stamps[0])
            epoch_s[mode] += gaps(stamps[1:])  # the first epoch compiles: timed apart
    set_compiling(False)
    eager, fast = (statistics.median(epoch_s[m]) for m in MODES)
    drift = max(float((w - nets["compiled"].state_dict()[k]).abs().max())
                for k, w in nets["eager"].state_dict().items())
    row = {"set": name, "images": int(images.shape[0]), "pixels": dataset.image_shape[-1],
           "epochs": epochs, "networks_per_mode": turns, "eager_epoch_s": eager,
           "compiled_epoch_s": fast, "speedup": eager / fast,
           "first_compiled_epoch_s": first_s["compiled"], "first_eager_epoch_s": first_s["eager"],
           "max_weight_difference": drift}
    print(f"training, {name}: {eager:.2f} s eager, {fast:.2f} s compiled per epoch "
          f"({row['speedup']:.2f}x); weights differ by at most {drift:.1e}", flush=True)
    return row


def matching_row(name: str, dataset, ipc: int, batch_real: int, iterations: int,
                 turns: int) -> dict:
    """Pixel DM iteration times per mode in turn, the same iterations and draws."""
    config = resolve(DistillConfig.of(param="pixels", loss="dm", ipc=ipc, iterations=iterations,
                                      batch_real=batch_real, seed=0), dataset)
    times = {mode: [] for mode in MODES}
    for turn in range(turns):
        for mode in MODES:
            set_compiling(mode == "compiled")
            stamps = [time.perf_counter()]
            distill_pixels(dataset, config, torch.device("cpu"),
                           lambda *_: stamps.append(time.perf_counter()))
            times[mode] += gaps(stamps[1:])  # the first iteration compiles: left out
    set_compiling(False)
    eager, fast = (statistics.median(times[m]) for m in MODES)
    row = {"set": name, "classes": dataset.num_classes, "pixels": dataset.image_shape[-1],
           "ipc": ipc, "batch_real": batch_real, "eager_iteration_s": eager,
           "compiled_iteration_s": fast, "speedup": eager / fast}
    print(f"pixel DM, {name}: {eager:.2f} s eager, {fast:.2f} s compiled per iteration "
          f"({row['speedup']:.2f}x)", flush=True)
    return row


def section(record: dict) -> str:
    lines = [HEADING, "",
             f"`python -m benchmarks.compile_speed` ({record['date']}, ddcodec "
             f"{record['version']}, torch {record['torch']}, {record['machine']}, "
             f"{record['wall_s'] / 60:.0f} min; raw record "
             "docs/benchmarks/compile_speed.json): `--compile` (or DDCODEC_COMPILE=1) runs the "
             "networks that train under the evaluation protocol and the networks of "
             "distribution matching through torch.compile; the teacher and the codec stay "
             "eager, so labels and files do not change. The two modes take turns in one "
             "process, on the same images and seeds; medians.", "",
             "| training | images | pixels | eager epoch (s) | compiled epoch (s) | speed-up | "
             "first compiled epoch (s) | weights differ by at most |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in record["training"]:
        lines.append(f"| {r['set']} | {r['images']:,} | {r['pixels']} | "
                     f"{r['eager_epoch_s']:.2f} | {r['compiled_epoch_s']:.2f} | "
                     f"**{r['speedup']:.2f}x** | {r['first_compiled_epoch_s']:.1f} | "
                     f"{r['max_weight_difference']:.1e} |")
    lines += ["", "| pixel DM | classes | pixels | IPC | reference batch | eager iteration (s) "
              "| compiled iteration (s) | speed-up |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in record["matching"]:
        lines.append(f"| {r['set']} | {r['classes']} | {r['pixels']} | {r['ipc']} | "
                     f"{r['batch_real']} | {r['eager_iteration_s']:.2f} | "
                     f"{r['compiled_iteration_s']:.2f} | **{r['speedup']:.2f}x** |")
    lines += ["", "The first compiled epoch includes compiling (each batch shape once per "
              "process; torch keeps the kernels in its cache, so a later process compiles "
              "faster). The weights' difference is rounding: the compiled kernels sum in "
              "another order. Figures measured with and without `--compile` differ as two "
              "equally good roundings do, within the seed-to-seed spread."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = benchmark_parser(__doc__)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    quick = args.quick
    started = time.perf_counter()
    cifar = load_dataset("cifar10-subset")
    tiny = load_dataset(f"imagefolder:{TINY}") if TINY.is_dir() else None
    epochs, turns = (3, 1) if quick else (5, 2)
    training = [training_row("CIFAR-10 subset, random real", cifar, 5 if quick else 50,
                             epochs, turns)]
    matching = [matching_row("CIFAR-10 subset", cifar, 10, 32 if quick else 256,
                             3 if quick else 6, turns)]
    if tiny is not None:
        training.append(training_row("Tiny-ImageNet-200, random real", tiny, 3, epochs, turns))
        matching.append(matching_row("Tiny-ImageNet-200, 20 classes", tiny.of_classes(range(20)),
                                     1, 8 if quick else 32, 3 if quick else 6, turns))
    record = {"date": dt.date.today().isoformat(), "version": __version__,
              "torch": torch.__version__,
              "machine": f"{platform.machine()}, {args.threads} torch thread(s)",
              "wall_s": time.perf_counter() - started, "training": training,
              "matching": matching}
    publish(args, "compile_speed", HEADING, record, section(record))


if __name__ == "__main__":
    run(main)
