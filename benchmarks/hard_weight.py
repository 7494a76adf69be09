"""Soft labels and the hard weight: how much of each image's own class to mix into its label.

The CIFAR-10 teacher (74.52 % on the test images) often disagrees with the class a synthetic
image was made for, and pure soft labels then train networks on its mistakes: at 12,000 bits per
class the latent set with VQ labels measured below the one with hard labels. This measures the
same files (the series' labelled points of benchmarks/cifar10_series.py, nothing distilled
again) at several hard weights w, through `measure --label-hard-weight`: training on
w one-hot(class) + (1 - w) row. w = 0 is the file as it is, w = 1 its hard-label control. Each
set also gets the teacher's agreement with its classes, measured on the labels themselves.

    python -m benchmarks.hard_weight --threads 1   # 10 to 30 min of one thread per row
    python -m benchmarks.hard_weight --quick       # a minute: the bundled subset
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import time
from pathlib import Path

import torch

from benchmarks.harness import (CACHE, ROOT, TEACHER, benchmark_parser, cifar10_jpeg,
                                measured_file, publish, run)
from ddcodec import __version__, api

HEADING = "## Soft labels: the hard weight (CIFAR-10, JPEG q75 release)"
SERIES_POINTS = CACHE / "cifar10-series" / "points"
SETS = ("latent-dm+vq", "distribution-dm+vq")  # the series' labelled sets of ours
BUDGET = 12_000
WEIGHTS = (0.5, 1.0, 0.25, 0.75, 0.0)  # measured in this order: the most telling first
EPOCHS, RUNS = 300, 3  # the series' (the curve's) protocol, so w = 0 sits beside its figure


def labelled_points(folder: Path, budget: float) -> list[tuple[str, Path, dict]]:
    """(series, .ddz, point) of each labelled set of ours at `budget` in the series' cache."""
    found = []
    for record in sorted(folder.glob("*.json")):
        point = json.loads(record.read_text())
        ddz = record.with_suffix(".ddz")
        if point.get("series") in SETS and point.get("budget_bpc") == budget and ddz.is_file():
            found.append((point["series"], ddz, point))
    return sorted(found, key=lambda item: SETS.index(item[0]))


def agreement(path: Path) -> dict:
    """How far the teacher's labels follow the set's classes: the share of images whose most
    probable class is their own, and the mean probability of their own class."""
    distilled = api.decode(path).to_set()
    rows, classes = distilled.soft_labels.probabilities, distilled.labels
    return {"argmax_is_class": float((rows.argmax(1) == classes).float().mean()),
            "p_class": float(rows[torch.arange(len(classes)), classes].mean()),
            "images": distilled.num_images, "hard_weight_stored": distilled.soft_labels.hard_weight}


def say(line: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {line}", flush=True)


def as_measured(point: dict) -> dict:
    """A series point's own measurement (the file as it is: w = 0); its seconds were spent
    there."""
    return {"accuracy_mean": point["accuracy_mean"], "accuracy_std": point["accuracy_std"],
            "bpc": point["bpc"], "seconds": 0.0, "from": "benchmarks/cifar10_series.py"}


def quick_set(folder: Path) -> Path:
    """Two random real subset images per class, VQ-labelled by the subset's teacher."""
    folder.mkdir(parents=True, exist_ok=True)
    plain = api.distill("cifar10-subset", folder / "plain.pt", loss="none", ipc=2, force=True,
                        device="cpu")
    labelled = api.label(plain, TEACHER, codec="vq", k=4, device="cpu")
    path = folder / "quick-vq.ddz"
    api.write_set(labelled, path, force=True)
    return path


def section(record: dict) -> str:
    weights = record["weights"]
    lines = [HEADING, "",
             f"`python -m benchmarks.hard_weight` ({record['date']}, {record['machine']}, "
             f"{record['threads']} torch thread(s); raw record docs/benchmarks/hard_weight.json):"
             f" the labelled sets of ours at {record['budget']:,} bits per class from "
             "benchmarks/cifar10_series.py (their VQ labels by the CIFAR-10 teacher, 74.52 % on "
             "the test images), each as it is (w = 0: the series' own measurement of the "
             "file, under the same protocol and seeds) and measured with `measure "
             "--label-hard-weight w`: training on w one-hot(class) + (1 - w) row, the class "
             "costing no bits (w = 1: the hard-label control). "
             f"{record['epochs']} epochs x {record['runs']} ConvNet-D3 on the 10,000 test "
             f"images, final epoch, seeds 0 to {record['runs'] - 1}. Teacher agrees: the share "
             "of images whose "
             "label's most probable class is their own (mean probability of their own class in "
             "brackets).", "",
             "| set | bits/class | images | teacher agrees | "
             + " | ".join(f"w = {w:g}" for w in sorted(weights)) + " |",
             "|---|---:|---:|---:|" + "---:|" * len(weights)]
    for row in record["sets"]:
        cells = []
        done = {float(k): v for k, v in row["accuracy"].items() if v}
        best = max(done, key=lambda w: done[w]["accuracy_mean"]) if done else None
        for w in sorted(weights):
            cell = done.get(w)
            text = (f"{cell['accuracy_mean']:.2f} ± {cell['accuracy_std']:.2f}" if cell
                    else "to come")
            cells.append(f"**{text}**" if w == best and len(done) > 1 else text)
        a = row["agreement"]
        lines.append(f"| {row['series']} | {row['bpc']:,.0f} | {a['images']} | "
                     f"{100 * a['argmax_is_class']:.0f} % ({a['p_class']:.2f}) | "
                     + " | ".join(cells) + " |")
    spent = sum(cell["seconds"] for row in record["sets"] for cell in row["accuracy"].values()
                if cell)
    lines += ["", f"Measuring time: {spent / 3600:.1f} CPU hours of one thread in all (rows "
              "resumed from a checkpoint count only their own process's time)."]
    missing = sum(1 for row in record["sets"] for cell in row["accuracy"].values() if not cell)
    if missing:
        lines += ["", f"**Unfinished.** {missing} row(s) to come; the same command goes on "
                  "from its cache."]
    return "\n".join(lines)


def main() -> None:
    parser = benchmark_parser(__doc__, report_only=True)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    epochs, runs, weights, cache = EPOCHS, RUNS, WEIGHTS, CACHE / "hard-weight"
    compute = not args.report_only
    if args.quick:
        folder = ROOT / "bench_runs" / "hard-weight-quick"
        sets = [("random real + vq (quick)", quick_set(folder), {"bpc": 0.0})]
        epochs, runs, weights, cache = 1, 1, (0.5, 0.0), folder / "measured"
    else:
        if compute:
            cifar10_jpeg()  # the files' headers name the unzipped release (fresh checkouts lack it)
        sets = labelled_points(SERIES_POINTS, BUDGET)
    # set by set: the latent set first (its labels disagree most with its classes, and it
    # measures in a third of the distributional set's time: fresh samples every epoch). w = 0
    # is the file as the series measured it, under this protocol and these seeds
    accuracy = {path: {str(w): (as_measured(point) if w == 0 and "accuracies" in point
                                else measured_file(
                                    path, epochs, runs, cache, compute,
                                    say=lambda line, w=w: say(f"{line}, hard weight {w:g}"),
                                    label_hard_weight=w))
                       for w in weights}
                for _, path, point in sets}
    rows = [{"series": series, "file": path.name, "bpc": point["bpc"],
             "agreement": agreement(path), "accuracy": accuracy[path]}
            for series, path, point in sets]
    record = {"date": str(dt.date.today()), "version": __version__,
              "machine": f"{platform.machine()}, {os.cpu_count()} cores",
              "threads": args.threads, "budget": BUDGET, "epochs": epochs, "runs": runs,
              "weights": list(weights), "sets": rows}
    publish(args, "hard_weight", HEADING, record, section(record))


if __name__ == "__main__":
    run(main)
