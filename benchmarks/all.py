"""The whole report in one command: every benchmark, in order, then the reproduction section.

    python -m benchmarks.all                      # from scratch: hours on 2 cores (see the report)
    python -m benchmarks.all --steps curve grids  # only some steps (the others keep their text)

Each step is one script (or CLI command) that rewrites its own section of docs/BENCHMARKS.md
and its plots and records; this runner times each one and keeps the last measured time of every
step in docs/benchmarks/report_steps.json, so the section "Reproducing this report" always says
how long each step took when it last ran and what a run from scratch costs. The curve reuses
cached points in benchmarks/cache/curve (committed, so a run resumes on a fresh checkout):
delete that folder for a run from scratch.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.harness import CACHE, ROOT, curve_point_seconds, replace_section, run

EXPERTS = ROOT / "bench_runs" / "experts"
CURVE_RECORD = ROOT / "docs" / "benchmarks" / "curve.json"
# (name, command, what it writes), in the order a run from scratch needs them
STEPS = [
    ("baselines", ["-m", "benchmarks.baselines"], "Vanilla baselines, CPU step times"),
    ("latent", ["-m", "benchmarks.latent"], "Rate-utility model (phase 1, latent vs vanilla)"),
    ("codec_speed", ["-m", "benchmarks.codec_speed"], "Bitstream speed"),
    ("speed", ["-m", "benchmarks.speed"], "Speed ratios (decode/encode vs raw constriction, DM "
                                       "iterations)"),
    ("execution_speed", ["-m", "benchmarks.execution_speed", "--threads", "1"],
     "Execution speed: glibc's freed memory, reused, and --compile (epochs, DM iterations)"),
    ("warmup", ["-m", "benchmarks.warmup"], "Phase-1 warm-up: candidates against accuracy"),
    ("fuzz", ["-m", "benchmarks.fuzz"], "Decoder fuzzing (10,800 mutated and forged files, 230 hostile encode inputs)"),
    ("experts", ["-m", "ddcodec", "experts", "-o", str(EXPERTS), "--num-experts", "4",
                 "--epochs", "10", "--device", "cpu", "-q"],
     "expert trajectories for TM (bench_runs/experts, reused when present)"),
    ("curve", ["-m", "benchmarks.curve", "--experts", str(EXPERTS)],
     "Rate-utility curve, docs/curve.png"),
    ("distribution_controls", ["-m", "benchmarks.distribution_controls"],
     "Distributional sets: what the samples add (on the curve's files)"),
    ("grids", ["-m", "benchmarks.grids"], "Decoded images, docs/grids/*.png"),
    ("pixel_coding", ["-m", "benchmarks.pixel_coding"], "Pixel coding and image folders"),
    ("labels", ["-m", "benchmarks.labels"], "Soft labels: the ladder"),
    ("label_epochs", ["-m", "benchmarks.labels", "--per-epoch"],
     "Soft labels per epoch: the ladder"),
    ("labels_tiny", ["-m", "benchmarks.labels", "--tiny"], "Soft labels on Tiny-ImageNet-200"),
    ("distribution_tiny", ["-m", "benchmarks.distribution"],
     "Tiny-ImageNet class subset: distributional, latent, random real, pixel DM"),
    ("tiny_all", ["-m", "benchmarks.tiny_all"],
     "Tiny-ImageNet-200, all classes: teacher, latent DM + VQ in blocks, controls"),
    ("block_memory", ["-m", "benchmarks.block_memory"],
     "Block memory: phase-1 candidates at 64 px (needs tiny_all's teacher)"),
    ("scale", ["-m", "benchmarks.scale"], "Scale: blocks and processes"),
    ("subtasks", ["-m", "benchmarks.subtasks"], "Subtasks (D3) for trajectory matching"),
    ("preset64", ["-m", "benchmarks.preset64"], "Latent preset for 64 x 64 images"),
    ("cifar10", ["-m", "benchmarks.cifar10", "--threads", "2"],
     "All of CIFAR-10: data, teacher, converged vanilla DM"),
    ("cifar10_series", ["-m", "benchmarks.cifar10_series", "--threads", "2"],
     "All of CIFAR-10: our series at equal effort, packed and labelled controls, ratios"),
    ("hard_weight", ["-m", "benchmarks.hard_weight", "--threads", "1"],
     "Soft labels: the hard weight (on cifar10_series' labelled files)"),
    ("doc_facts", ["-m", "benchmarks.doc_facts"], "Sizes quoted in the docs"),
    ("fkd_ladder", ["-m", "benchmarks.fkd_ladder"],
     "FKD relabelling at CIFAR scale: the label ladder (needs the CIFAR-10 teacher)"),
]
# Scripts that are no step of the report, and why (tests/features/test_benchmarks.py checks
# that every script is one or the other).
NOT_STEPS = {
    "identity": "compares two commits' outputs around a refactor (run on both, then --compare)",
    "codec_ab": "times the bitstream of two checkouts side by side (prints only)",
    "gpu_check": "needs a CUDA card (bash benchmarks/gpu_check.sh); --report publishes its lines",
    "state": "reads where stopped runs stand from their checkpoints (prints only)",
}


def section(times: dict) -> str:
    lines = ["## Reproducing this report", "",
             "`make bench` (= `python -m benchmarks.all`) runs every step below in order and "
             "rewrites this file, its plots and `docs/benchmarks/*.json`; `--steps NAME ...` "
             "runs some of them (`--steps` alone only rewrites this section). Times are each "
             "step's last run through this runner on 2 CPU cores (x86_64), written by it:", "",
             "| step | command | writes | minutes | when |", "|---|---|---|---:|---|"]
    total, missing = 0.0, []
    for name, command, writes in STEPS:
        shown = " ".join(c if not c.startswith(str(ROOT)) else
                         str(Path(c).relative_to(ROOT)) for c in command)
        shown = f"python {shown}"
        record = times.get(name)
        if record:
            total += record["seconds"]
            note = " (started with cached results)" if record.get("reused") else ""
            lines.append(f"| {name} | `{shown}` | {writes} | {record['seconds'] / 60:.1f}{note} "
                         f"| {record['date']} |")
        else:
            missing.append(name)
            lines.append(f"| {name} | `{shown}` | {writes} | not yet timed by this runner | |")
    lines += ["", f"Sum of the timed steps: {total / 60:.0f} min."]
    if missing:
        lines.append(f"Not timed by this runner yet: {', '.join(missing)} (the baselines and "
                     "latent sections state how long their scripts took).")
    lines.append(from_scratch(times, missing))
    return "\n".join(lines)


def from_scratch(times: dict, missing: list[str]) -> str:
    """What a run from scratch costs: the timed steps, with a curve that started from cached
    points counted at the recorded time of all its points instead."""
    curve = times.get("curve")
    if missing or curve is None or not CURVE_RECORD.is_file():
        return "A run from scratch cannot be totalled until every step has been timed."
    reused = [name for name, r in times.items() if r.get("reused") and name != "curve"]
    if reused:
        return (f"A run from scratch cannot be totalled: {', '.join(reused)} started from "
                "cached results.")
    if not curve.get("reused"):
        return "Every step above ran from scratch: their sum is the cost of the whole report."
    points = json.loads(CURVE_RECORD.read_text())["points"]
    point_seconds, timed, unique = curve_point_seconds(points)
    if timed < unique:
        return (f"A run from scratch cannot be totalled: {unique - timed} of the curve's points "
                "come from an earlier run and carry no recorded time.")
    others = sum(r["seconds"] for name, r in times.items() if name != "curve")
    return (f"From scratch: about {(others + point_seconds) / 60:.0f} min on 2 cores, the other "
            f"steps as timed plus the curve's {unique} points at their recorded computing time "
            f"({point_seconds / 60:.0f} min; this runner's curve step started from cached points "
            "and took the time shown above). Delete benchmarks/cache/curve to measure it in one "
            "go.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    names = [name for name, _, _ in STEPS]
    parser.add_argument("--steps", nargs="*", choices=names, default=names)
    parser.add_argument("--out", default=str(ROOT / "docs" / "BENCHMARKS.md"))
    args = parser.parse_args()
    out = Path(args.out)
    record_path = out.parent / "benchmarks" / "report_steps.json"
    times = json.loads(record_path.read_text()) if record_path.is_file() else {}
    for name, command, _ in STEPS:
        if name not in args.steps:
            continue
        cached = ((name == "curve" and any((CACHE / "curve" / "points").glob("*")))
                  or (name == "experts" and (EXPERTS / "experts.json").is_file()))
        print(f"[{time.strftime('%H:%M:%S')}] {name}: {' '.join(command)}", flush=True)
        started = time.perf_counter()
        result = subprocess.run([sys.executable, *command], cwd=ROOT)
        if result.returncode != 0:
            sys.exit(f"all: step {name} failed (exit {result.returncode}); later steps not run")
        times[name] = {"seconds": time.perf_counter() - started,
                       "date": time.strftime("%Y-%m-%d"), "reused": cached}
        record_path.parent.mkdir(parents=True, exist_ok=True)
        record_path.write_text(json.dumps(times, indent=1) + "\n")
    replace_section(out, "## Reproducing this report", section(times))
    print(section(times))


if __name__ == "__main__":
    run(main)
