"""Vanilla baselines on the bundled CIFAR-10 subset, on CPU, under a documented shortened protocol.

Measures, side by side in one process:
  * accuracy of the random real subset and of vanilla DM (pixels) at IPC 1 and 10;
  * ConvNet-D3 trained on the whole subset (the ceiling);
  * CPU time per DM iteration and per evaluation epoch, so users can plan runs.
Writes docs/BENCHMARKS.md (the baselines section) and docs/benchmarks/baselines.json.

    python -m benchmarks.baselines            # about 25 minutes on 2 cores
    python -m benchmarks.baselines --quick    # a few minutes, for checking the script
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
from benchmarks.harness import benchmark_parser, read_record, replace_section, run, write_record
from ddcodec.data.datasets import load_dataset
from ddcodec.training.trainer import EvalConfig, accuracy, train_network


def timed_hook(stamps: list[float]):
    def hook(*_):
        stamps.append(time.perf_counter())
    return hook


def per_step(stamps: list[float], start: float) -> float:
    times = [b - a for a, b in zip([start] + stamps[:-1], stamps)]
    return statistics.median(times[1:] if len(times) > 1 else times)


def main() -> None:
    parser = benchmark_parser(__doc__)
    parser.add_argument("--epochs", type=int, default=300)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--dm-iterations", type=int, default=500)
    parser.add_argument("--batch-real", type=int, default=64)
    parser.add_argument("--full-epochs", type=int, default=20)
    parser.add_argument("--timings-only", action="store_true",
                        help="re-measure only the per-step times (a few minutes) and keep the "
                             "accuracies of the last full run")
    args = parser.parse_args()
    if args.quick:
        args.epochs, args.runs, args.dm_iterations, args.full_epochs = 4, 1, 3, 1
    torch.set_num_threads(args.threads)
    if args.timings_only:
        refresh_timings(args)
        return
    started = time.perf_counter()
    results, timings = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        for ipc in (1, 10):
            for loss, label in (("none", "random real"), ("dm", "DM (pixels)")):
                path = Path(tmp) / f"{loss}_ipc{ipc}.pt"
                stamps: list[float] = []
                t0 = time.perf_counter()
                api.distill("cifar10-subset", path, device="cpu", loss=loss, ipc=ipc,
                            iterations=args.dm_iterations, batch_real=args.batch_real,
                            on_iteration=timed_hook(stamps))
                if loss == "dm":
                    timings[f"dm_iteration_ipc{ipc}_s"] = per_step(stamps, t0)
                epoch_stamps: list[float] = []
                t0 = time.perf_counter()
                report = api.measure(path, epochs=args.epochs, runs=args.runs, device="cpu",
                                     on_epoch=timed_hook(epoch_stamps))
                timings[f"eval_epoch_ipc{ipc}_s"] = per_step(epoch_stamps, t0)
                report["label"], report["ipc"] = label, ipc
                results.append(report)
                print(f"{label:12s} IPC {ipc:2d}: {100 * report['accuracy_mean']:.2f} ± "
                      f"{100 * report['accuracy_std']:.2f} %  ({report['bpc']:,.0f} bpc)",
                      flush=True)
        # reference DM settings (256 real images per class), timed only
        stamps = []
        t0 = time.perf_counter()
        api.distill("cifar10-subset", None, device="cpu", loss="dm", ipc=10, iterations=3,
                    batch_real=256, on_iteration=timed_hook(stamps))
        timings["dm_iteration_ipc10_batch256_s"] = per_step(stamps, t0)

    dataset = load_dataset("cifar10-subset")
    full_config = EvalConfig(epochs=args.full_epochs, batch_size=64, dsa_strategy="flip")
    stamps = []
    t0 = time.perf_counter()
    net = train_network(dataset.train_images(), dataset.y_train, dataset.num_classes,
                        full_config, seed=0, device=torch.device("cpu"),
                        on_epoch=timed_hook(stamps))
    full_acc = accuracy(net, dataset.test_images(), dataset.y_test, torch.device("cpu"))
    timings["full_subset_epoch_s"] = per_step(stamps, t0)
    print(f"whole subset: {100 * full_acc:.2f} %", flush=True)

    record = {
        "date": dt.date.today().isoformat(), "ddcodec_version": __version__,
        "machine": f"{platform.processor() or platform.machine()}, {args.threads} torch threads",
        "torch": torch.__version__, "args": vars(args), "results": results,
        "full_subset": {"accuracy": full_acc, "config": full_config.to_dict(),
                        "train_images": int(dataset.x_train.shape[0])},
        "timings": timings, "wall_s": time.perf_counter() - started,
    }
    write_outputs(record, Path(args.out))


def measure_timings(steps: int = 25, epochs: int = 30) -> dict:
    """Median seconds per DM iteration and per evaluation epoch, on a machine left alone; enough
    steps that the median is stable on a shared machine (5 steps gave 0.7 to 1.2 s for the same
    DM iteration)."""
    timings = {}
    for ipc, batch_real, key in ((1, 64, "dm_iteration_ipc1_s"), (10, 64, "dm_iteration_ipc10_s"),
                                 (10, 256, "dm_iteration_ipc10_batch256_s")):
        stamps: list[float] = []
        t0 = time.perf_counter()
        distilled = api.distill("cifar10-subset", None, device="cpu", loss="dm", ipc=ipc,
                                iterations=steps, batch_real=batch_real,
                                on_iteration=timed_hook(stamps))
        timings[key] = per_step(stamps, t0)
        if batch_real == 64:
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "s.pt"
                from ddcodec.sets.setfile import save_set

                save_set(distilled, path)
                stamps = []
                t0 = time.perf_counter()
                api.measure(path, epochs=epochs, runs=1, device="cpu",
                            on_epoch=timed_hook(stamps))
                timings[f"eval_epoch_ipc{ipc}_s"] = per_step(stamps, t0)
    dataset = load_dataset("cifar10-subset")
    stamps = []
    t0 = time.perf_counter()
    train_network(dataset.train_images(), dataset.y_train, dataset.num_classes,
                  EvalConfig(epochs=2, batch_size=64, dsa_strategy="flip"), seed=0,
                  device=torch.device("cpu"), on_epoch=timed_hook(stamps))
    timings["full_subset_epoch_s"] = per_step(stamps, t0)
    return timings


def refresh_timings(args) -> None:
    out = Path(args.out)
    record = read_record(out, "baselines")
    record["timings"] = measure_timings()
    record["timings_date"] = dt.date.today().isoformat()
    record["timings_machine"] = f"{platform.machine()}, {args.threads} torch threads"
    write_outputs(record, out)


def write_outputs(record: dict, out: Path) -> None:
    json_path = write_record(out, "baselines", record)
    a, t = record["args"], record["timings"]
    lines = [
        "## Vanilla baselines (CIFAR-10 subset, CPU)",
        "",
        f"Produced by `python -m benchmarks.baselines` on {record['date']} (ddcodec "
        f"{record['ddcodec_version']}, torch {record['torch']}, {record['machine']}); "
        f"took {record['wall_s'] / 60:.0f} min. Raw numbers: `docs/benchmarks/baselines.json`.",
        "",
        f"Shortened protocol: ConvNet-D3, SGD lr 0.01 momentum 0.9 wd 5e-4, batch 256, "
        f"**{a['epochs']} epochs** (lr x0.1 at {a['epochs'] // 2}), DSA, final-epoch accuracy "
        f"on the 1,017 test images, mean ± std over **{a['runs']} networks** (seeds 0..{a['runs'] - 1}). "
        f"DM: {a['dm_iterations']} iterations, {a['batch_real']} real images per class per "
        f"iteration, lr 1, momentum 0.5, initialised from the same random real images as the "
        f"random baseline (seed 0). The field's protocol is 1000 epochs, 5 networks and 20,000 DM "
        f"iterations with 256 real images per class; the subset has about 10% of CIFAR-10, so "
        f"compare rows with each other, not with paper tables.",
        "",
        "| set | IPC | accuracy (%) | runs (%) | file bytes | bits per class |",
        "|---|---:|---:|---|---:|---:|",
    ]
    for r in record["results"]:
        lines.append(
            f"| {r['label']} | {r['ipc']} | {100 * r['accuracy_mean']:.2f} ± "
            f"{100 * r['accuracy_std']:.2f} | {', '.join(f'{100 * x:.1f}' for x in r['accuracies'])}"
            f" | {r['file_bytes']:,} | {r['bpc']:,.0f} |")
    f = record["full_subset"]
    lines += [
        f"| whole subset (ceiling) | ~{f['train_images'] // 10} | {100 * f['accuracy']:.2f} | 1 run "
        f"| | |",
        "",
        f"The whole-subset row trains one ConvNet-D3 for {f['config']['epochs']} epochs on all "
        f"{f['train_images']:,} training images (batch 64, random flips only, lr 0.01 with x0.1 "
        "at half-time), as a ceiling. File sizes are the `set.pt` files (float32 pixels plus "
        "metadata), i.e. the papers' float32 convention plus a few hundred bytes.",
        "",
        "### CPU time, for planning runs (median per step)",
        "",
        f"Measured {record.get('timings_date', record['date'])} on "
        f"{record.get('timings_machine', record['machine'])}, with nothing else running.",
        "",
        "| step | seconds |",
        "|---|---:|",
        f"| DM iteration, IPC 1, {a['batch_real']} real/class | {t['dm_iteration_ipc1_s']:.2f} |",
        f"| DM iteration, IPC 10, {a['batch_real']} real/class | {t['dm_iteration_ipc10_s']:.2f} |",
        f"| DM iteration, IPC 10, 256 real/class (reference) | "
        f"{t['dm_iteration_ipc10_batch256_s']:.2f} |",
        f"| evaluation epoch, IPC 1 (10 images) | {t['eval_epoch_ipc1_s']:.3f} |",
        f"| evaluation epoch, IPC 10 (100 images) | {t['eval_epoch_ipc10_s']:.3f} |",
        f"| training epoch on the whole subset (batch 64) | {t['full_subset_epoch_s']:.1f} |",
        "",
        f"So the field's full protocol (1000 epochs x 5 networks) at IPC 10 takes about "
        f"{t['eval_epoch_ipc10_s'] * 5000 / 60:.0f} min on this CPU, and 20,000 reference DM "
        f"iterations about {t['dm_iteration_ipc10_batch256_s'] * 20000 / 3600:.1f} h.",
        "",
    ]
    replace_section(out, "## Vanilla baselines", "\n".join(lines))
    print(f"wrote {out} and {json_path}")


if __name__ == "__main__":
    run(main)
