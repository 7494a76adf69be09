"""Accuracy against bits per class on Tiny-ImageNet, sized for 2 CPU cores: distributional sets
(D3) against deterministic latent sets, next to random real images and vanilla pixel DM at equal
bits. A class subset of `../shared/data/tiny-imagenet-200` (64 x 64 real JPEGs; by default its
first 10 classes in classes.tsv order, 200 training and the official 50 validation images each):
latent DM and distributional DM at each budget (the latter measured with fresh and with frozen
samples); random real images packed as WebP and JPEG (quality 25) at each budget; pixel DM at 1
image per class, whose 8-bit file is exactly the largest budget (64 x 64 x 3 x 8 = 98,304 bits);
and the whole subset as the ceiling. All through `ddcodec.reports.curve` (points cached and committed in
benchmarks/cache/distribution-tiny, so an interrupted run resumes, on a fresh checkout too).
Writes docs/benchmarks/distribution_tiny.json and the section "Distributional sets on
Tiny-ImageNet" of docs/BENCHMARKS.md.

The CIFAR-10 comparison is part of the rate-utility curve (benchmarks/curve.py), and its sample
sheets are made by benchmarks/grids.py.

    python -m benchmarks.distribution            # about 1.5 hours on 2 cores
    python -m benchmarks.distribution --quick    # minutes, tiny settings, to check the script

Two processes at one thread each use 2 cores better than one at two: run `--part 1 --threads 1`
and `--part 2 --threads 1` side by side (each computes half of the points into the cache), then
once more without --part, which finds every point cached and writes the report. `--only
baselines` computes only the points that distil nothing of ours, minutes each.
"""

from __future__ import annotations

import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

from benchmarks.harness import (CACHE, ROOT, TINY, benchmark_parser, class_subset,
                                curve_point_seconds, rate_control_misses, replace_section, run,
                                write_record)
from ddcodec.reports.curve import CurveConfig, run_curve
from ddcodec.reports.points import PointStore
from ddcodec.reports.table import build_table
from ddcodec.distillation import DistillConfig
from ddcodec.training.trainer import EvalConfig

HEADING = "## Distributional sets on Tiny-ImageNet"
# 64 x 64 images cost 4x CIFAR's per image: budgets that buy a few to tens of latent images per
# class; the largest is one 8-bit image per class, where pixel DM at IPC 1 sits at equal bits
BUDGETS = (24_576, 98_304)


def section(table: dict, args, seconds: float) -> str:
    by = {(p["series"], p.get("budget_bpc")): p for p in table["points"]}

    def acc(p):
        return f"{p['accuracy_mean']:.2f} ± {p['accuracy_std']:.2f}" if p else "–"

    lines = [HEADING, "",
             f"Measured {table['date']} with `python -m benchmarks.distribution` (ddcodec "
             f"{table['ddcodec_version']}; {seconds / 60:.0f} min of computing summed over its "
             "points and the ceiling): the first "
             f"{args.classes} classes of Tiny-ImageNet-200 (64 × 64; 200 training images per "
             "class, the official 50 validation images per class as the test set), a class "
             "subset because a 200-class point costs hours on 2 cores. Latent and distributional "
             f"DM at each budget ({args.fit_iterations} phase-1 and {args.iterations} phase-2 "
             f"iterations, batch_real {args.batch_real}, one shared decoder), each file trained "
             f"on by {args.runs} fresh ConvNet-D3 for {args.epochs} epochs, final epoch (the "
             "field trains ConvNet-D4 at 64 × 64; this benchmark keeps measure's default).", "",
             "| bits per class, latent / distributional (target) | latent % | "
             "distributional, fresh % | frozen samples % "
             "| fresh − latent | priors per class | median σ per level (fine → coarse) |",
             "|---:|---:|---:|---:|---:|---:|---|"]
    gains = []
    for b in args.budgets:
        plain, fresh = by.get(("latent-dm", b)), by.get(("distribution-dm", b))
        frozen = by.get(("distribution-dm-frozen", b))
        if fresh is None and plain is None:
            continue
        gain = fresh["accuracy_mean"] - plain["accuracy_mean"] if plain and fresh else None
        if gain is not None:
            gains.append((gain, b))
        sigma = ", ".join(f"{v:.2f}" for v in (fresh or {}).get("sigma_median_per_level") or [])

        def bits(p):
            return f"{p['bpc']:,.0f}" if p else "–"

        priors = f"{fresh['images_per_class']:g}" if fresh else "–"
        lines.append(f"| {bits(plain)} / {bits(fresh)} ({b:,.0f}) | {acc(plain)} | "
                     f"{acc(fresh)} | {acc(frozen)} | {'–' if gain is None else f'{gain:+.2f}'} "
                     f"| {priors} | {sigma} |")
    if gains:
        best = max(gains)
        lines += ["", f"Best gain of the distributional set over the latent one: {best[0]:+.2f} "
                      f"points at {best[1]:,.0f} bits per class (target: +2 at some budget; "
                      f"{'met' if best[0] >= 2 else '**not met**'})."]
    misses = rate_control_misses(table["points"])
    if misses:
        lines += ["", "Not at their budgets:", *misses]
    missing = not_measured(table, args)
    if missing:
        lines += ["", "Not measured yet (the script computes them; a re-run reuses every point "
                      "above): " + "; ".join(missing) + "."]
    return "\n".join(lines + ["", *baseline_lines(table, args)])


def not_measured(table: dict, args) -> list[str]:
    """The points the full run makes that the cache does not hold yet."""
    have = {(p["series"], p.get("budget_bpc")) for p in table["points"]}
    have |= {(p["series"], None) for p in table["points"] if p["series"] == "pixels-8bit"}
    wanted = [(s, b) for b in args.budgets for s in ("latent-dm", "distribution-dm",
                                                     "distribution-dm-frozen", "webp-q25",
                                                     "jpeg-q25")]
    missing = [f"{s} at {b:,.0f}" for s, b in wanted if (s, b) not in have]
    if ("pixels-8bit", None) not in have:
        missing.append("pixel DM at IPC 1")
    if not table.get("ceiling"):
        missing.append("the ceiling")
    return missing


def baseline_lines(table: dict, args) -> list[str]:
    """Every series at its bits per class: ours against random real images and pixel DM."""
    names = {"latent-dm": "latent DM", "distribution-dm": "distributional DM (fresh samples)",
             "webp-q25": "random real, WebP q25", "jpeg-q25": "random real, JPEG q25",
             "pixels-8bit": "vanilla pixel DM, 8-bit pixels",
             "pixels-float32": "vanilla pixel DM, float32 pixels"}
    rows = sorted((p for p in table["points"] if p["series"] in names),
                  key=lambda p: (p["bpc"], p["series"]))
    lines = [f"Against random real images and vanilla pixel DM ({args.pixel_iterations} "
             "iterations) at equal bits, "
             "same protocol:", "", "| series | bits per class | images per class | accuracy % |",
             "|---|---:|---:|---:|"]
    for p in rows:
        per_class = p.get("images_per_class", p.get("ipc"))
        lines.append(f"| {names[p['series']]} | {p['bpc']:,.0f} | "
                     f"{'–' if per_class is None else f'{per_class:g}'} | "
                     f"{p['accuracy_mean']:.2f} ± {p['accuracy_std']:.2f} |")
    ceiling = table.get("ceiling")
    if ceiling:
        lines += ["", f"Ceiling, the whole {args.classes}-class training subset "
                      f"({args.ceiling_epochs} epochs): {ceiling['accuracy_mean']:.2f} ± "
                      f"{ceiling['accuracy_std']:.2f} %."]
    return lines


def main() -> None:
    parser = benchmark_parser(__doc__, ROOT)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--work", default=str(CACHE / "distribution-tiny"))
    parser.add_argument("--part", type=int, choices=(1, 2), default=None,
                        help="Only half of the points, into the cache, no report: 1 = the "
                             "smaller budget, pixel DM and the ceiling; 2 = the larger budget.")
    parser.add_argument("--only", choices=("baselines",), default=None,
                        help="Only the points that distil nothing of ours (packed WebP/JPEG, "
                             "pixel DM, the ceiling), into the cache, no report.")
    parser.add_argument("--report-only", action="store_true",
                        help="Write the report from the cached points; compute nothing (the "
                             "points not measured yet are listed).")
    args = parser.parse_args()
    if args.only and args.report_only:
        parser.error("--only computes points and --report-only computes none: choose one")
    torch.set_num_threads(args.threads)
    if not TINY.is_dir():
        sys.exit(f"distribution: {TINY} not found (the shared data beside the checkout)")
    if args.quick:
        args.classes, args.budgets, args.epochs, args.runs = 3, (24_576,), 3, 1
        args.iterations, args.fit_iterations, args.batch_real = 3, 16, 8
        args.pixel_iterations, args.ceiling_epochs = 3, 1
        args.work = str(ROOT / "bench_runs" / "distribution-tiny-quick")
    else:
        args.budgets, args.epochs, args.runs = BUDGETS, 300, 2
        args.iterations, args.fit_iterations, args.batch_real = 150, 800, 32
        args.pixel_iterations, args.ceiling_epochs = 500, 20
    work = Path(args.work).resolve()  # points are keyed on paths relative to it
    data = f"imagefolder:{class_subset(args.classes, work / 'data')}"
    latent = DistillConfig.of(param="latent", iterations=args.iterations,
                              fit_iterations=args.fit_iterations, batch_real=args.batch_real)
    first = args.part in (None, 1)
    budgets = args.budgets if args.part is None else (
        args.budgets[:1] if args.part == 1 else args.budgets[1:])
    config = CurveConfig(budgets=budgets, data=data, distill=latent,
                         eval=EvalConfig(epochs=args.epochs), runs=args.runs, baselines=True,
                         pixel_ipcs=(1,) if first else (), qualities=(25,),
                         pixel_iterations=args.pixel_iterations,
                         ceiling_epochs=args.ceiling_epochs if first else 0,
                         shared_decoder="yes", distribution_losses=("dm",))
    if args.only == "baselines":
        config = replace(config, losses=())
    started = time.perf_counter()
    if args.report_only:
        table = build_table(PointStore(work), config)
    else:
        table = run_curve(config, work, "cpu", on_event=lambda m: print(
            f"[{time.strftime('%H:%M:%S')}] {m}", file=sys.stderr, flush=True))
    seconds = time.perf_counter() - started
    if args.part is not None or args.only:
        what = f"--only {args.only}" if args.only else f"part {args.part}"
        print(f"distribution: {what} cached in {seconds / 60:.0f} min; run without --part or "
              "--only for the report", file=sys.stderr)
        return
    computed = curve_point_seconds(table["points"])[0] + (table.get("ceiling") or {}).get(
        "seconds", 0.0)
    text = section(table, args, computed)
    print(text)
    if args.quick:
        return
    out = Path(args.out)
    write_record(out, "distribution_tiny", {**table, "settings": {
        k: v for k, v in vars(args).items() if k not in ("out", "work")},
        "wall_seconds_this_run": seconds})
    replace_section(out, HEADING, text)


if __name__ == "__main__":
    run(main)
