"""All of CIFAR-10 (the JPEG q75 release): the data as a user has it, a teacher on the 50,000
training images, and vanilla pixel DM run until its accuracy stops rising.

The data is `../shared/data/cifar10/cifar10-jpeg.zip`, unzipped once into the cache and read
through `--data imagefolder:DIR` as a user would; the load times of the first (decoding) and a
cached load are measured in fresh processes. The teacher is chosen on a held-out tenth of the
training split and its test accuracy reported. Vanilla DM (the reference batch of 256 real
images per class) runs at IPC 1, 10 and 50 to each iteration count of `--iterations`, as ONE run
per IPC that keeps its checkpoint and resumes to the next count: each set equals a run straight
to its count, and an interrupted run (a session's end) goes on from its last checkpoint. Every
set is measured under the CPU protocol (300 epochs x 2 ConvNet-D3, final epoch, the 10,000 test
images) beside the papers' own vanilla DM figures, twice where rounding changes it: as the float
set (its float32 count) and as its own 8-bit .ddz (the file the honest ratio prices; DM's
out-of-range pixels are clipped there). Random real images at IPC 1, 10 and 50 are the floor.

Writes docs/benchmarks/cifar10.json and the section "CIFAR-10 (JPEG q75 release): data,
teacher, converged vanilla DM" of docs/BENCHMARKS.md once every point is measured (before that,
it prints what it has).

    python -m benchmarks.cifar10 --threads 1          # many CPU hours; resumes from its cache

Run it from the repository root: a data folder inside the repository is named relative to it,
so the teacher, the points and the checkpoints never hold this machine's paths.
    python -m benchmarks.cifar10 --report-only        # the section from the cached points
    python -m benchmarks.cifar10 --quick              # minutes, on the bundled subset
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
from typing import Callable

import torch

from benchmarks.harness import (CACHE, CIFAR10_DIR, EPOCHS, ROOT, RUNS, benchmark_parser,
                                cached_row, measure_set, publish, run, spec_key, unzip_cifar10)
from ddcodec import __version__, api
from ddcodec.spent import SpentClock

HEADING = "## CIFAR-10 (JPEG q75 release): data, teacher, converged vanilla DM"
IPCS = (1, 10, 50)
ITERATIONS = (500, 2_000, 5_000)
TEACHER_EPOCHS = 10
# Vanilla DM on CIFAR-10 as its paper reports it (Zhao & Bilen, "Dataset Condensation with
# Distribution Matching", WACV 2023, Table 1: lossless originals, GPU, 1000 epochs x 5 networks)
PAPER_DM = {1: 26.0, 10: 48.9, 50: 63.0}
PAPER_RANDOM = {1: 14.4, 10: 26.0, 50: 43.4}  # random real subsets, the same table
CONVERGED_GAIN = 0.5  # points of accuracy: below it, more iterations no longer pay
DM_CHECKPOINT_EVERY = 50  # iterations; a stopped run loses at most these
MEASURED = "8-bit .ddz"  # the key of a set's own 8-bit file's cached measurement
FLOAT32_BPC = {ipc: ipc * 32 * 32 * 3 * 32 for ipc in IPCS}  # 98,304 bits per class at IPC 1


def load_seconds(spec: str, cache: Path) -> float:
    """A fresh process's `load_dataset(spec)` with the folder cache in `cache`: the first load
    into an empty cache decodes every image and writes the cache, a later one maps it."""
    code = ("import time; t = time.perf_counter(); from ddcodec.data.datasets import "
            f"load_dataset; load_dataset({spec!r}); print(time.perf_counter() - t)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ROOT, check=True, env={**os.environ, "DDCODEC_CACHE": str(cache)})
    return float(out.stdout.strip().splitlines()[-1])


def load_times(spec: str) -> dict:
    """The first load (an empty cache) and a cached one, in fresh processes."""
    with tempfile.TemporaryDirectory() as cache:
        return {"first_load_s": load_seconds(spec, Path(cache)),
                "cached_load_s": load_seconds(spec, Path(cache))}


def teacher_row(spec: str, path: Path, epochs: int, train: bool) -> dict:
    """The teacher's record, read from its file (trained first when missing and `train`)."""
    from ddcodec.labels.teacher import load_teacher

    if not path.is_file():
        if not train:
            return {}
        started = time.perf_counter()
        api.train_teacher(spec, path, device="cpu", epochs=epochs, force=True)
        path.with_suffix(".seconds").write_text(f"{time.perf_counter() - started:.0f}\n")
    info = load_teacher(path).info
    seconds = path.with_suffix(".seconds")  # absent for a teacher trained by hand
    return {"seconds": float(seconds.read_text()) if seconds.is_file() else None,
            "epochs": info["config"]["epochs"], "epoch": info["epoch"],
            "train_images": info["train_images"], "held_out_images": info["held_out_images"],
            "chosen_holdout_accuracy": info["chosen_holdout_accuracy"],
            "test_accuracy": info["test_accuracy"], "data": info["data"]}


def measured(path: Path, spec_row: dict) -> dict:
    """One set file measured under the point's protocol (its progress kept beside it)."""
    epochs = spec_row["epochs"]
    row = measure_set(path, epochs, spec_row["runs"], Path(f"{path}.{epochs}-epochs.ckpt"))
    return {"accuracy_mean": row["accuracy_mean"], "accuracy_std": row["accuracy_std"],
            "measure_s": row["seconds"]}


def eight_bit_file(set_path: Path) -> tuple[Path, dict]:
    """The set rounded to its own 8-bit .ddz (the file the honest ratio prices) and the
    encoder's account of the rounding: exact, or its error (vanilla DM's pixels leave the
    image range, and the file clips them)."""
    ddz = set_path.with_suffix(".ddz")
    _, info = api.encode(set_path, ddz, force=True, pixels="8bit")
    return ddz, {"file_bpc": info["bpc"], "file_exact": info["pixels"]["lossless"],
                 "file_psnr_db": info["pixels"].get("psnr_db")}


def baseline_row(set_path: Path, ipc: int, spec_row: dict, cache_stem: str, make_set,
                 compute: bool, **extra) -> dict | None:
    """A vanilla set's row: the float set's accuracy (beside its float32 count, the papers'
    convention) and its own 8-bit .ddz's bits and accuracy. The two are cached apart
    (`cache_stem`-KEY.json), so a report needs no set file; the file is measured on its own
    only when rounding changed the set (else the two accuracies are one). `make_set()` writes
    `set_path` when it is missing and returns the fields that say what it took (`distill_s`);
    `compute` False: only what is cached (None when something is missing)."""
    made: dict = {}

    def ensure_set() -> None:
        if not set_path.is_file():
            made.update(make_set())

    def float_row() -> dict:
        ensure_set()
        return {"ipc": ipc, **extra, **made, **measured(set_path, spec_row)}

    def file_row() -> dict:
        ensure_set()
        ddz, file = eight_bit_file(set_path)
        own = row if file["file_exact"] else measured(ddz, spec_row)
        return {**file, "file_accuracy_mean": own["accuracy_mean"],
                "file_accuracy_std": own["accuracy_std"],
                "file_measure_s": 0.0 if own is row else own["measure_s"]}

    row = cached_row(Path(f"{cache_stem}-{spec_key(spec_row)}.json"), spec_row,
                     float_row if compute else None)
    if row is None:
        return None
    file_spec = {**spec_row, "measured": MEASURED}
    file = cached_row(Path(f"{cache_stem}-{spec_key(file_spec)}.json"), file_spec,
                      file_row if compute else None)
    if file is None:
        return None
    # rows cached before the 8-bit file was measured held the float tensor file's bits
    row = {**{k: v for k, v in row.items() if k != "file_bpc"},
           "float32_bpc": FLOAT32_BPC[ipc], **file}
    print(json.dumps(row), flush=True)
    return row


def dm_rows(spec: str, work: Path, ipc: int, counts: tuple[int, ...], compute: bool,
            quick: bool) -> list[dict]:
    """One DM run per IPC, resumed to each count; every set measured (cached rows)."""
    ckpt = work / f"dm-ipc{ipc}.ckpt"
    seconds_file = ckpt.with_suffix(".seconds-so-far")
    settings = dict(param="pixels", loss="dm", ipc=ipc, batch_real=8 if quick else 256,
                    seed=0)
    rows = []
    for n in counts:
        spec_row = {"data": spec, "settings": settings, "iterations": n,
                    "epochs": 2 if quick else EPOCHS, "runs": 1 if quick else RUNS}
        out = work / f"dm-ipc{ipc}-{n}.pt"

        def make_set(n=n, out=out) -> dict:
            # the seconds of every process that worked on the run up to this count; a run
            # resumed from a checkpoint older than its seconds file gives a lower bound
            clock = SpentClock.start(seconds_file, ckpt.is_file())
            api.distill(spec, out, device="cpu", iterations=n, checkpoint=ckpt,
                        checkpoint_every=DM_CHECKPOINT_EVERY, keep_checkpoint=True,
                        resume=ckpt.is_file(), force=True,
                        on_iteration=clock.saver(DM_CHECKPOINT_EVERY), **settings)
            clock.save()  # the next count goes on from this one's checkpoint
            return {"distill_s": clock.total(), "distill_s_complete": clock.complete,
                    "distill_threads": torch.get_num_threads()}

        row = baseline_row(out, ipc, spec_row, str(work / "points" / f"dm-ipc{ipc}-{n}"),
                           make_set, compute, iterations=n)
        if row is not None:
            rows.append(row)
    return rows


def random_rows(spec: str, work: Path, compute: bool, quick: bool) -> list[dict]:
    """Random real images at IPC 1, 10 and 50 (seed 0, hard labels), the floor every distilled
    set must clear, measured as the DM sets are (cached rows)."""
    rows = []
    for ipc in IPCS:
        spec_row = {"data": spec, "random_ipc": ipc, "seed": 0,
                    "epochs": 2 if quick else EPOCHS, "runs": 1 if quick else RUNS}
        out = work / f"random-ipc{ipc}.pt"

        def make_set(ipc=ipc, out=out) -> dict:
            api.distill(spec, out, device="cpu", loss="none", ipc=ipc, seed=0, force=True)
            return {}  # a draw of real images: no distillation time to speak of

        row = baseline_row(out, ipc, spec_row, str(work / "points" / f"random-ipc{ipc}"),
                           make_set, compute)
        if row is not None:
            rows.append(row)
    return rows


def last_gain(rows: list[dict], ipc: int) -> tuple[dict, dict, float] | None:
    """(the count before, the last count, the accuracy gained between them) of an IPC's DM
    rows; None with fewer than two counts."""
    runs = sorted((r for r in rows if r["ipc"] == ipc), key=lambda r: r["iterations"])
    if len(runs) < 2:
        return None
    return runs[-2], runs[-1], runs[-1]["accuracy_mean"] - runs[-2]["accuracy_mean"]


def stopped_rising(rows: list[dict], ipc: int) -> bool:
    found = last_gain(rows, ipc)
    return found is not None and found[2] < CONVERGED_GAIN


def dm_schedule(counts: tuple[int, ...], ipcs: list[int],
                measure: Callable[[int, int], list[dict]],
                after_first: Callable[[], None] = lambda: None) -> list[dict]:
    """Every (IPC, count)'s rows, `measure` called in the order the CPU hours should go:
    breadth first (every IPC reaches a count before any goes on to the next, so a run cut
    short by a session's end still leaves a whole row of the table per count), but an IPC that
    stopped rising runs its later counts, a confirmation, after those still rising.
    `after_first` runs once the first count is in (the random floor, before the long counts)."""
    rows, deferred = [], []
    for i, n in enumerate(counts):
        for ipc in ipcs:
            if stopped_rising(rows, ipc):
                deferred.append((ipc, n))
            else:
                rows += measure(ipc, n)
        if i == 0:
            after_first()
    for ipc, n in deferred:
        rows += measure(ipc, n)
    return rows


def convergence_lines(rows: list[dict]) -> list[str]:
    """Per IPC, whether vanilla DM has stopped rising: its last count gains less than
    CONVERGED_GAIN points over the count before it (one count: not known yet)."""
    lines = []
    for ipc in sorted({r["ipc"] for r in rows}):
        found = last_gain(rows, ipc)
        if found is None:
            only = next(r for r in rows if r["ipc"] == ipc)
            lines.append(f"* IPC {ipc}: one count measured ({only['iterations']:,} iterations); "
                         "whether it still rises is not known yet.")
            continue
        before, last, gain = found
        state = ("stopped rising" if gain < CONVERGED_GAIN
                 else "still rising: not converged at this count")
        lines.append(f"* IPC {ipc}: {gain:+.2f} points from {before['iterations']:,} to "
                     f"{last['iterations']:,} iterations: {state}.")
    return [f"Converged means the last count gains less than {CONVERGED_GAIN} points over the "
            "one before:", "", *lines] if lines else []


def file_cells(row: dict) -> str:
    """A set's own 8-bit .ddz: its accuracy, bits per class and how far rounding moved it."""
    psnr = "exact" if row["file_exact"] else f"{row['file_psnr_db']:.1f} dB"
    return (f"{row['file_accuracy_mean']:.2f} ± {row['file_accuracy_std']:.2f} | "
            f"{row['file_bpc']:,.0f} | {psnr}")


def hours_cell(row: dict, rows: list[dict] = ()) -> str:
    """The CPU hours a DM set took to distil, every process up to its count together; '≥'
    where an earlier process's seconds were not kept (runs begun before they were): then at
    least what any lower count of the same run took (`rows`), as reaching it came first."""
    if row.get("distill_s") is None:
        return "not recorded"
    seconds, whole = row["distill_s"], row.get("distill_s_complete")
    if not whole:
        seconds = max([seconds] + [r["distill_s"] for r in rows if r["ipc"] == row["ipc"]
                                   and r["iterations"] < row["iterations"]
                                   and r.get("distill_s") is not None])
    threads = row.get("distill_threads", 1)  # rows before it was kept: all ran on one
    return (("" if whole else "≥ ") + f"{seconds / 3600:.1f}"
            + ("" if threads == 1 else f" ({threads} threads)"))


def section(record: dict) -> str:
    d, t = record["data"], record["teacher"]
    unzipped = ("the zip was unzipped in an earlier run" if d["unzip_s"] == "cached"
                else f"unzipping took {d['unzip_s']} s")
    lines = [HEADING, "",
             f"`python -m benchmarks.cifar10` ({record['date']}, {record['machine']}): CIFAR-10 "
             "(JPEG q75 release), 50,000 training and 10,000 test images, read as an "
             "ImageFolder. Measured under the CPU protocol: ConvNet-D3, "
             f"{record['epochs']} epochs x {record['runs']} networks, final-epoch accuracy on "
             "the 10,000 test images.", "",
             f"* Data: {unzipped}. The first load (decoding 60,000 JPEGs into the cache) took "
             f"{d['first_load_s']:.1f} s; a cached load took {d['cached_load_s']:.1f} s.",
             f"* Teacher: ConvNet-D3, {t['epochs']} epochs on {t['train_images']:,} training "
             f"images, chosen at epoch {t['epoch']} on the {t['held_out_images']:,} held out "
             f"({100 * t['chosen_holdout_accuracy']:.2f} %). It reaches "
             f"**{100 * t['test_accuracy']:.2f} %** on the test images"
             + (f" ({t['seconds'] / 60:.0f} min to train)." if t.get("seconds") else "."), "",
             "Every set is measured as it is (float pixels, beside their float32 count: the "
             "papers' convention) and as its own 8-bit .ddz (pixels rounded to 8 bits and "
             "clipped to the image range, coded losslessly), the file the honest ratio prices. "
             "Vanilla DM's pixels leave the image range, so its file loses accuracy (its PSNR "
             "to the float set is given); random real images round exactly.", "",
             "| vanilla DM | iterations | accuracy % | float32 bits/class | its 8-bit .ddz: "
             "accuracy % | bits/class | PSNR | papers' figure | distillation, CPU h |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in record["rows"]:
        lines.append(f"| IPC {r['ipc']} | {r['iterations']:,} | {r['accuracy_mean']:.2f} ± "
                     f"{r['accuracy_std']:.2f} | {r['float32_bpc']:,} | {file_cells(r)} | "
                     f"{PAPER_DM[r['ipc']]:.1f} % | {hours_cell(r, record['rows'])} |")
    lines += ["", "Distillation hours: wall hours on one torch thread (unless the cell says "
              "otherwise) from iteration 0 to the count, over every process that worked on the "
              "run (it goes on from its checkpoint after a stop); ≥: a process that ran before "
              "these seconds were kept counted only its own part.", "",
              *convergence_lines(record["rows"])]
    done = {(r["ipc"], r["iterations"]) for r in record["rows"]}
    missing = [p for p in record.get("planned", []) if (p["ipc"], p["iterations"]) not in done]
    if record.get("random"):
        lines += ["", "| random real (hard labels, seed 0) | accuracy % | float32 bits/class | "
                  "its 8-bit .ddz: accuracy % | bits/class | PSNR | papers' figure |",
                  "|---|---:|---:|---:|---:|---:|---:|"]
        lines += [f"| IPC {r['ipc']} | {r['accuracy_mean']:.2f} ± {r['accuracy_std']:.2f} | "
                  f"{r['float32_bpc']:,} | {file_cells(r)} | {PAPER_RANDOM[r['ipc']]:.1f} % |"
                  for r in record["random"]]
    lines += ["", "The papers' figures are cross-protocol: lossless originals, GPU, 1000 "
              "epochs x 5 networks, 20,000 iterations."]
    if missing:
        lines += ["", "**Unfinished.** Still to measure: " + ", ".join(
            f"IPC {p['ipc']} at {p['iterations']:,}" for p in missing) + ". The run goes on "
            "from its checkpoints with the same command."]
    return "\n".join(lines)


def main() -> None:
    parser = benchmark_parser(__doc__, report_only=True)
    parser.add_argument("--work", default=str(CACHE / "cifar10-full"),
                        help="Cache of the data, teacher, checkpoints and points.")
    parser.add_argument("--data-dir", default=str(CIFAR10_DIR),
                        help="Where the zip is unzipped once (an ImageFolder root).")
    parser.add_argument("--iterations", type=int, nargs="+", default=list(ITERATIONS))
    parser.add_argument("--ipc", type=int, nargs="+", default=list(IPCS), choices=IPCS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    work = Path(args.work)
    counts = tuple(sorted(args.iterations))
    if args.quick:
        work, counts = ROOT / "bench_runs" / "cifar10-quick", (2, 4)
        spec, unzip_s = "cifar10-subset", None
    else:
        root, unzip_s = unzip_cifar10(Path(args.data_dir).resolve())
        # inside the repository: named relative to it, so no record holds this machine's path
        spec = f"imagefolder:{root.relative_to(ROOT) if root.is_relative_to(ROOT) else root}"
    work.mkdir(parents=True, exist_ok=True)
    data = {"unzip_s": "cached" if unzip_s is None else f"{unzip_s:.1f}"}
    data_path = work / "data.json"
    if not args.report_only:
        if data_path.is_file():
            data = json.loads(data_path.read_text())
        else:
            data.update(load_times(spec))
            data_path.write_text(json.dumps(data, indent=1))
    elif data_path.is_file():
        data = json.loads(data_path.read_text())
    teacher = teacher_row(spec, work / "teacher.pt", 1 if args.quick else TEACHER_EPOCHS,
                          train=not args.report_only)
    random = []

    def random_floor() -> None:
        random.extend(random_rows(spec, work, not args.report_only, args.quick))

    rows = dm_schedule(counts, args.ipc, lambda ipc, n: dm_rows(
        spec, work, ipc, (n,), not args.report_only, args.quick), random_floor)
    rows.sort(key=lambda r: (r["ipc"], r["iterations"]))
    record = {"date": str(dt.date.today()), "version": __version__,
              # a report from the cache does not know the threads its points ran on
              "machine": platform.machine() + ("" if args.report_only
                                               else f", {args.threads} torch threads"),
              "epochs": 2 if args.quick else EPOCHS, "runs": 1 if args.quick else RUNS,
              "data": data, "teacher": teacher, "rows": rows, "random": random,
              "planned": [{"ipc": ipc, "iterations": n} for ipc in args.ipc for n in counts]}
    complete = len(rows) == len(record["planned"])
    if teacher and "first_load_s" in data and (complete or args.report_only):
        # a report of an unfinished run says which points are still to come
        publish(args, "cifar10", HEADING, record, section(record))
    else:
        print(json.dumps(record, indent=1))
        print("not every point is measured yet: nothing written (--report-only writes what "
              "is measured)", file=sys.stderr)


if __name__ == "__main__":
    run(main)
