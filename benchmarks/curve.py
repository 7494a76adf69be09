"""Rate-utility curves on the bundled CIFAR-10 subset, on CPU: latent DM, GM and (smaller) TM
against vanilla pixel sets (float32 and rounded to 8 bits) and packed JPEG/WebP real subsets;
with a teacher (trained once into benchmarks/cache/teacher.pt, as benchmarks/labels.py trains its
own), latent DM again with float16 and with VQ soft labels inside each budget, and random real
images (packed WebP q25) with the same teacher's VQ labels at equal bits; distributional DM
(D3, `--param distribution`) with hard and VQ labels, each measured with fresh samples every
epoch and with frozen ones.

Runs `ddcodec curve` (ddcodec.reports.curve.run_curve) with the settings below into benchmarks/cache/curve
(points are cached there and committed: an interrupted run resumes, on a fresh checkout too; a
finished one only rebuilds the report),
then writes docs/benchmarks/curve.json, docs/curve.png and the section "Rate-utility curve" of
docs/BENCHMARKS.md.

    python -m benchmarks.curve                 # about 3.5 hours on 2 cores from scratch
    python -m benchmarks.curve --quick         # minutes, tiny settings, to check the script
    python -m benchmarks.curve --experts DIR   # TM needs experts (ddcodec experts -o DIR)

Two processes at one thread each use 2 cores better than one at two: run `--only latent
--threads 1` beside `--only baselines --threads 1` (then plain `--threads 1` for the
distributional points), each filling the cache, and finally `--report-only` for the report.
"""

from __future__ import annotations

import shutil
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

from benchmarks.harness import (CACHE, EPOCHS, IPC50_ITERATIONS, PLAN, ROOT, RUNS, TEACHER,
                                TEACHER_EPOCHS, benchmark_parser, curve_configs,
                                curve_point_seconds, rate_control_misses, replace_section, run,
                                write_record)
from ddcodec.reports.curve import CurveConfig, _legend, run_curve, write_outputs
from ddcodec.reports.points import PointStore
from ddcodec.reports.table import build_table, is_ours

def _first_per_loss(plan: list[CurveConfig]) -> list[CurveConfig]:
    """The plan less the configs that only add a pixel point to a loss already planned."""
    seen, out = set(), []
    for config in plan:
        if config.losses not in seen:
            seen.add(config.losses)
            out.append(config)
    return out


# --only: which part of the plan a process computes
ONLY = {
    "baselines": lambda plan: [replace(c, losses=()) for c in plan if c.baselines],
    "latent": lambda plan: [replace(c, distribution_losses=(), baselines=False, pixel_ipcs=(),
                                    ceiling_epochs=0) for c in _first_per_loss(plan)],
}


def computing_note(points: list[dict], seconds: float) -> str:
    """How long the points took on 2 cores: this run, and all of them from their records."""
    total, timed, unique = curve_point_seconds(points)
    note = f"this run {seconds / 60:.0f} min on 2 cores"
    if timed:
        note += f"; the {timed} timed points took {total / 60:.0f} min in all"
    if timed < unique:
        note += f", {unique - timed} points from an earlier run carry no recorded time"
    return note


def minutes(point: dict) -> str:
    """Computing time of a point on 2 cores (distil, encode, measure), where it was recorded."""
    return f"{point['seconds'] / 60:.1f}" if point.get("seconds") is not None else "–"


def section(table: dict, args, seconds: float) -> str:
    pts = table["points"]
    lines = [
        "## Rate-utility curve (CIFAR-10 subset, CPU)",
        "",
        f"Measured {table['date']} with `python -m benchmarks.curve"
        f"{' --experts DIR' if args.experts else ''}` (ddcodec {table['ddcodec_version']}; "
        f"{computing_note(pts, seconds)}). Every point is "
        "a real file whose bytes are counted (bits per class = 8 x file bytes / 10) and is "
        f"trained on by {table['protocol']['runs']} fresh ConvNet-D3 for "
        f"{table['protocol']['epochs']} epochs (the shortened CPU protocol; the field uses 1000 "
        "epochs x 5), accuracy on the subset's 1,017 test images.",
        "",
        "![rate-utility curve](curve.png)",
        "",
        "| series | bits per class | accuracy % | images per class | minutes | notes |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for p in pts:
        if "-q" in p["series"] and "+" not in p["series"]:
            continue
        notes = []
        if p.get("lmbda") is not None:
            notes.append(f"λ {p['lmbda']:.3g}, target {p['budget_bpc']:,.0f}")
        if p.get("within_tolerance") is False:
            notes.append(f"**rate control missed: {p['bpc'] / p['budget_bpc'] - 1:+.0%}**")
        if p.get("quality"):
            notes.append(f"quality {p['quality']}")
        if p.get("syn_lr"):
            notes.append(f"learnt lr {p['syn_lr']:.3g}")
        if p["series"].startswith("pixels") and p.get("iterations"):
            notes.append(f"DM stopped at {p['iterations']:,} iterations")
        if p.get("labels"):
            labels = p["labels"]
            notes.append(f"labels {labels['rung']}: {labels['label_bpc']:,.0f} bits/class")
        count = p.get("images_per_class") or p.get("ipc")
        name = (_legend(p["series"]) or (p["series"],))[0]
        lines.append(f"| {name} | {p['bpc']:,.0f} | "
                     f"{p['accuracy_mean']:.2f} ± {p['accuracy_std']:.2f} | "
                     f"{count if count is not None else ''} | {minutes(p)} | "
                     f"{'; '.join(notes)} |")
    ceiling = table.get("ceiling")
    if ceiling:
        lines += ["", f"Ceiling, the line above every point: the whole training split "
                      f"({ceiling['num_images']:,} images) for {ceiling['epochs']} epochs, "
                      f"{ceiling['accuracy_mean']:.2f} ± {ceiling['accuracy_std']:.2f} %."]
    labelled = sorted({p["series"] for p in pts if "+" in p["series"] and not is_ours(p["series"])})
    lines += ["", "At each latent point, the best accuracy each baseline reaches with no more "
              "bits per class (– where none fits):", "",
              "| latent point | bits per class | accuracy % | vanilla float32 | vanilla 8-bit "
              f"| JPEG | WebP |{''.join(f' {n} |' for n in labelled)} above all |",
              "|---|---:|---:|---:|---:|---:|---:|" + "---:|" * len(labelled) + "---|"]

    def cell(v):
        return "–" if v is None else f"{v:.2f}"

    for r in table["comparison"]:
        extra = "".join(f" {cell(r.get(n))} |" for n in labelled)
        lines.append(f"| {r['series']} | {r['bpc']:,.0f} | {r['accuracy']:.2f} | "
                     f"{cell(r['pixels-float32'])} | {cell(r['pixels-8bit'])} | {cell(r['jpeg'])} "
                     f"| {cell(r['webp'])} |{extra} {'yes' if r['above_all'] else '**no**'} |")
    lines += ["", "Equal-accuracy bit ratios against vanilla pixel DM (the latent curve's bits "
              "interpolated in log bits where it first reaches the reference's accuracy), "
              "against the baseline's float32 count (the papers' convention) and against the "
              "same baseline's own 8-bit .ddz; rows marked cross-protocol set our curve beside "
              "the papers' published vanilla DM figures (lossless images, GPU, 1000 epochs x 5):",
              ""]
    for r in table["ratios"]:
        if r["ratio"]:
            bound = "at most " if r["lower_bound"] else ""
            at_least = "≥ " if bound else ""
            honest = (f", **{at_least}{r['ratio_8bit']:.0f}x** fewer than its 8-bit .ddz "
                      f"({r['reference_8bit_bpc']:,.0f} bits)" if r.get("ratio_8bit") else "")
            lines.append(f"* {r['series']} vs {r['reference']} ({r['reference_accuracy']:.2f} % at "
                         f"{r['reference_bpc']:,.0f} bits): {bound}{r['latent_bpc']:,.0f} bits per "
                         f"class, **{at_least}{r['ratio']:.0f}x** fewer than float32{honest}"
                         f"{' (already reached at the smallest budget measured)' * bool(bound)}.")
        else:
            lines.append(f"* {r['series']} does not reach {r['reference']}'s "
                         f"{r['reference_accuracy']:.2f} % within the budgets measured.")
    lines += labelled_summary(table)
    lines += distribution_summary(table)
    measured_ipcs = {p.get("ipc") for p in pts if p["series"] == "pixels-float32"}
    missing = [i for i in args.pixel_ipcs if i not in measured_ipcs]
    misses = [p for p in pts if p.get("within_tolerance") is False]
    if missing or misses:
        lines += ["", "Not yet shown:"]
    if missing:
        lines.append(f"* vanilla pixels at IPC {', '.join(map(str, missing))}: not measured in "
                     "this run (the script computes it last; re-running it reuses every point "
                     "above and adds it).")
    lines += rate_control_misses(misses)
    lines += ["", "Settings: latent v0 decoders (one shared decoder below 32,000 bits per class), "
              f"{args.fit_iterations} phase-1 and {args.iterations} phase-2 iterations (GM 80, "
              "TM 40), "
              f"`--target-bpc` picks λ and the samples per class; batch_real {args.batch_real}; "
              f"GM {PLAN['gm'][1]}; TM {PLAN['tm'][1]} on experts from `ddcodec experts "
              "--num-experts 4 --epochs 10`. Vanilla pixels: pixel DM, "
              f"{args.pixel_iterations} iterations ({IPC50_ITERATIONS} at IPC 50), measured "
              "on the decoded 8-bit .ddz (the "
              "float32 point carries the same accuracy: the 8-bit rounding of the float set). "
              "JPEG/WebP: random real images packed per class into one mosaic (Pillow; WebP "
              f"method 6), qualities {', '.join(map(str, args.qualities))}, the best at each "
              "budget shown; every file plus a 32-bit length each counted."]
    return "\n".join(lines)


def labelled_summary(table: dict) -> list[str]:
    """The teacher's own accuracy and the soft-label targets (met or not, always reported)."""
    teacher = table.get("teacher")
    if not teacher:
        return []
    lines = ["", f"Soft labels: one teacher, {teacher['arch']}, epoch {teacher['epoch']} chosen on "
             f"held-out training images ({100 * teacher['chosen_holdout_accuracy']:.1f} %); its "
             f"own test accuracy {100 * teacher['test_accuracy']:.1f} % (reported, never used to "
             "choose). Labels at T = 1, soft cross-entropy; VQ takes the most codebook entries "
             "within 10 % of each budget (`distill --labels vq`); the random real control gets "
             "the same teacher's VQ labels by the same rule, its labels and images together "
             "within the budget."]
    # the labelled series of ours, less the frozen-sample controls (the same files)
    labelled = [p for p in table["points"] if is_ours(p["series"]) and "+" in p["series"]
                and "-frozen" not in p["series"]]
    pts = [p for p in labelled if p.get("budget_bpc") == 12_000]
    if pts:
        best = max(pts, key=lambda p: p["accuracy_mean"])
        verdict = "met" if best["accuracy_mean"] >= 50 else "**not met**"
        lines.append(f"* Target: 50 % or more at 12,000 bits per class: best {best['series']} "
                     f"{best['accuracy_mean']:.2f} % at {best['bpc']:,.0f} ({verdict}).")
    names = {p["series"] for p in labelled}
    ratios = [r for r in table["ratios"] if r["series"] in names and r.get("ipc") == 10
              and not r.get("cross_protocol")]
    if ratios:
        ratios.sort(key=lambda r: -(r["ratio"] or 0))
        best, rest = ratios[0], ratios[1:]
        verdict = "met" if best["ratio"] and best["ratio"] >= 100 else "**not met**"
        value = f"{best['ratio']:.0f}x" if best["ratio"] else "not reached"
        others = "; others: " + ", ".join(
            f"{r['series']} {r['ratio']:.0f}x" if r["ratio"] else f"{r['series']} not reached"
            for r in rest) if rest else ""
        lines.append(f"* Target: 100x or more fewer bits than vanilla float32 IPC 10 at its "
                     f"accuracy: best {best['series']} {value} ({verdict}){others}.")
    return lines


def distribution_summary(table: dict) -> list[str]:
    """Distributional (D3) against deterministic latent DM at each budget, the frozen-samples
    control, and the spreads training learnt; the +2 points target, met or not."""
    by = {(p["series"], p.get("budget_bpc")): p for p in table["points"]}
    budgets = sorted({b for s, b in by if s == "distribution-dm"})
    if not budgets:
        return []
    lines = ["", "Distributional sets (D3, `--param distribution`): the same rate-utility model, "
             "each latent sample the mean of a prior with a spread per level; measured on the "
             "means plus one fresh sample per prior every epoch (so twice the images and SGD "
             "steps per epoch), and on the same files with epoch 0's samples frozen. Final "
             "epoch, not D3's best checkpoint.", "",
             "| labels | bits per class | deterministic latent % | distributional, fresh % | "
             "frozen samples % | fresh − deterministic | median σ per level (latent steps, "
             "fine → coarse) |", "|---|---:|---:|---:|---:|---:|---|"]
    gains = []
    for suffix, name in (("", "hard"), ("+vq", "VQ soft")):
        for b in budgets:
            fresh = by.get((f"distribution-dm{suffix}", b))
            if fresh is None:
                continue
            frozen = by.get((f"distribution-dm-frozen{suffix}", b))
            plain = by.get((f"latent-dm{suffix}", b))
            gain = fresh["accuracy_mean"] - plain["accuracy_mean"] if plain else None
            if gain is not None:
                gains.append((gain, name, b))
            sigma = ", ".join(f"{v:.2f}" for v in fresh.get("sigma_median_per_level") or [])

            def acc(p):
                return f"{p['accuracy_mean']:.2f} ± {p['accuracy_std']:.2f}" if p else "–"

            lines.append(f"| {name} | {fresh['bpc']:,.0f} | {acc(plain)} | {acc(fresh)} | "
                         f"{acc(frozen)} | {'–' if gain is None else f'{gain:+.2f}'} | "
                         f"{sigma} |")
    if gains:
        best = max(gains)
        verdict = "met" if best[0] >= 2 else "**not met**"
        lines += ["", f"* Target: the distributional set beats the deterministic one by 2 points "
                      f"or more at some budget: best {best[0]:+.2f} points ({best[1]} labels, "
                      f"{best[2]:,.0f} bits per class) ({verdict})."]
    return lines


def ensure_teacher(args) -> str:
    """The labelled series' teacher: benchmarks/cache/teacher.pt, trained once (its time is the
    first labelled point's overhead, stated in the report)."""
    path = Path(args.teacher)
    if not path.is_file():
        from ddcodec import api

        print(f"training the teacher into {path}", file=sys.stderr, flush=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        api.train_teacher("cifar10-subset", path, device="cpu",
                          epochs=1 if args.quick else TEACHER_EPOCHS)
    return str(path)


def main() -> None:
    parser = benchmark_parser(__doc__, report_only=True)
    parser.add_argument("--experts", default=None)
    parser.add_argument("--wall-minutes", type=float, default=None,
                        help="With --report-only: the minutes the points took, for the report.")
    parser.add_argument("--only", choices=sorted(ONLY), default=None,
                        help="Compute one kind of point into the cache, no report: "
                             "'baselines' distil nothing of ours (packed JPEG/WebP, labelled "
                             "random, vanilla pixels, the ceiling; minutes each, where a latent "
                             "point takes an hour), 'latent' every latent point with and "
                             "without labels, no distributional ones. Two processes fill the "
                             "cache side by side this way.")
    parser.add_argument("--work", default=str(CACHE / "curve"))
    parser.add_argument("--teacher", default=str(TEACHER),
                        help="Trained here first if absent; 'none': no labelled series.")
    args = parser.parse_args()
    if args.only and args.report_only:
        parser.error("--only computes points and --report-only computes none: choose one")
    torch.set_num_threads(args.threads)
    if args.quick:
        args.epochs, args.runs, args.iterations, args.fit_iterations = 5, 1, 3, 16
        args.batch_real, args.pixel_iterations, args.qualities = 16, 2, (50,)
        args.pixel_ipcs, args.work = (1,), str(ROOT / "bench_runs" / "curve-quick")
        if args.teacher == parser.get_default("teacher"):
            args.teacher = str(Path(args.work) / "teacher.pt")
    else:
        args.epochs, args.runs, args.iterations, args.fit_iterations = EPOCHS, RUNS, 150, 800
        args.batch_real, args.pixel_iterations, args.qualities = 64, 500, (25, 50)
        args.pixel_ipcs = (1, 10, 50)
    started = time.perf_counter()
    args.teacher = None if args.teacher == "none" else ensure_teacher(args)
    table = None
    if args.report_only:
        table = build_table(PointStore(Path(args.work)), curve_configs(args)[0])
        write_outputs(table, Path(args.work))
    plan = [] if args.report_only else curve_configs(args)
    if args.only:
        plan = ONLY[args.only](plan)
    for config in plan:
        table = run_curve(config, Path(args.work), "cpu",
                          on_event=lambda m: print(f"[{time.strftime('%H:%M:%S')}] {m}",
                                                   file=sys.stderr, flush=True))
    seconds = time.perf_counter() - started
    if args.only:
        print(f"curve: --only {args.only}: cached in {seconds / 60:.0f} min; run without --only "
              "for the report", file=sys.stderr)
        return
    if args.report_only and args.wall_minutes:
        seconds = 60 * args.wall_minutes
    if args.quick:
        print(section(table, args, seconds))
        return
    out = Path(args.out)
    write_record(out, "curve", {**table, "wall_seconds_this_run": seconds})
    shutil.copyfile(Path(args.work) / "curve.png", out.parent / "curve.png")
    replace_section(out, "## Rate-utility curve", section(table, args, seconds))
    print(section(table, args, seconds))


if __name__ == "__main__":
    run(main)
