"""Our series on all of CIFAR-10 (the JPEG q75 release) at equal effort, beside random real
images packed at equal bits, the labelled random control and converged vanilla DM.

At 12,000, 98,304, 6,000 and 24,576 bits per class (the targets first, so an interrupted run
has answered them): latent DM, latent DM + VQ labels, distributional DM and distributional DM +
VQ labels, all with the same settings and the same phase-2 budget, rate control's retrain rounds
included (`--phase2-budget`); each point records the phase-2 iterations it spent. Beside them,
random real images packed as JPEG and WebP (q25, q50) at each budget, and WebP q25 with the same
teacher's VQ labels. The teacher is benchmarks/cifar10.py's (all 50,000 training images). The
vanilla DM rows come from benchmarks/cifar10.py's record (per IPC, the count of iterations whose
float set measured best: converged DM is the best DM reached, not its last count):
every equal-accuracy ratio is given against their float32 count, against their own 8-bit .ddz,
and against the papers' vanilla DM table (cross-protocol). The headline points (1000 epochs x 5
beside 300 x 3) are measured as soon as 12,000 or 98,304 is in, the cheapest first: our best
there, vanilla DM IPC 10's 8-bit .ddz and random real IPC 10.

Points are cached in benchmarks/cache/cifar10-series (committed records and .ddz files), so a run
resumes where the last one stopped. Measured under the curve's CPU protocol on the 10,000 test
images (300 epochs x 3 ConvNet-D3).

    python -m benchmarks.cifar10_series --threads 1          # many CPU hours; resumes
    python -m benchmarks.cifar10_series --report-only        # the section from the cache
    python -m benchmarks.cifar10_series --budgets 12000      # some budgets only
"""

from __future__ import annotations

import datetime as dt
import json
import platform
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from benchmarks.harness import (CACHE, CIFAR10_DIR, LABELLED_RANDOM, ROOT, benchmark_parser,
                                cifar10_jpeg, curve_point_seconds, measured_file, publish,
                                rate_control_misses, run)
from ddcodec import __version__
from ddcodec.distillation.config import DistillConfig
from ddcodec.reports.curve import run_curve, write_outputs
from ddcodec.reports.points import PointStore
from ddcodec.reports.table import build_table, compare, ratios
from ddcodec.reports.curve_config import CurveConfig
from ddcodec.training.protocol import EvalConfig

HEADING = "## CIFAR-10 (JPEG q75 release): our series at equal effort"
BUDGETS = (12_000, 98_304, 6_000, 24_576)  # in the order they run: the targets first
ITERATIONS, FIT_ITERATIONS, BATCH_REAL = 150, 800, 64  # the subset curve's settings
PHASE2_BUDGET = 300  # phase-2 iterations in all per point, retrain rounds included
TARGETS = {12_000: 55.0, 98_304: 65.0}  # the accuracy targets, percent
RATIO_TARGETS = (100.0, 25.0)  # against converged DM IPC 10: float32, its own 8-bit file
HEADLINE_BUDGETS = (12_000, 98_304)  # our best series there, measured under both protocols
HEADLINE_PROTOCOLS = ((300, 3), (1000, 5))  # the curve's, the field's
PLOT = "cifar10_curve.png"  # beside docs/BENCHMARKS.md
SERIES = ("latent-dm", "latent-dm+vq", "distribution-dm", "distribution-dm+vq")
# Published CIFAR-10 accuracies (%) at the float32 budgets of IPC 1 and 10 (98,304 and 983,040
# bits per class), read from the rate-utility paper's CIFAR-10 figure (TM-RUO at its own nearest
# points: 1.07e5 and 7.7e5 bits per class) and the DM paper's table; lossless originals, GPUs,
# 1000 epochs x 5 networks (research notes: papers.md 1.11, ecosystem.md 1.6).
PAPER_BUDGETS = (98_304, 983_040)
PAPERS = {"TM-RUO": (70.3, 77.5), "NSD": (68.5, 73.3), "DDiF": (66.5, 74.0),
          "FreD": (60.6, 70.3), "vanilla TM (MTT)": (46.2, 65.2), "vanilla DM": (26.0, 48.9),
          "random real": (14.4, 26.0)}  # TM-RUO at its nearest points, 1.07e5 and 7.7e5 bpc


def series_config(spec: str, teacher: str, budgets: tuple[float, ...], quick: bool
                  ) -> CurveConfig:
    iterations, fit, batch, cap = ((3, 16, 8, 6) if quick else
                                   (ITERATIONS, FIT_ITERATIONS, BATCH_REAL, PHASE2_BUDGET))
    distill = DistillConfig.of(param="latent", iterations=iterations, fit_iterations=fit,
                               batch_real=batch)
    return CurveConfig(budgets=budgets, losses=("dm",), data=spec, distill=distill,
                       phase2_budget=cap,
                       eval=EvalConfig(epochs=2 if quick else 300), runs=1 if quick else 3,
                       teacher=teacher, label_rungs=("vq",), distribution_losses=("dm",),
                       pixel_ipcs=(), qualities=(25, 50), ceiling_epochs=0,
                       labelled_random=LABELLED_RANDOM)


def dm_points(record_path: Path) -> list[dict]:
    """benchmarks/cifar10.py's vanilla DM as the curve's two pixel series, per IPC at the count
    of iterations whose float set measured best (DM's pixels drift further out of range as it
    runs on, and a later count may measure lower: the baseline is the best DM reached): the
    float set at its float32 count, and the set's own 8-bit .ddz at its own accuracy (rounding
    clips DM's out-of-range pixels)."""
    if not record_path.is_file():
        return []
    best: dict[int, dict] = {}
    for row in json.loads(record_path.read_text())["rows"]:
        if row["accuracy_mean"] > best.get(row["ipc"], {"accuracy_mean": -1})["accuracy_mean"]:
            best[row["ipc"]] = row
    points = []
    for ipc, row in sorted(best.items()):
        common = {"ipc": ipc, "iterations": row["iterations"]}
        points += [{"series": "pixels-float32", "bpc": row["float32_bpc"], **common,
                    "accuracy_mean": row["accuracy_mean"], "accuracy_std": row["accuracy_std"]},
                   {"series": "pixels-8bit", "bpc": row["file_bpc"], **common,  # its own
                    "accuracy_mean": row["file_accuracy_mean"],
                    "accuracy_std": row["file_accuracy_std"]}]
    return points


def table_with_dm(store: PointStore, config: CurveConfig, dm: list[dict]) -> dict:
    table = build_table(store, config)
    points = sorted(table["points"] + dm, key=lambda p: (p["series"], p["bpc"]))
    return {**table, "points": points, "comparison": compare(points),
            "ratios": ratios(points, cifar10=True)}


def draw_curve(table: dict, path: Path) -> None:
    """The rate-utility plot of the whole table (ours, the packed controls, vanilla DM's float
    set and its 8-bit file), drawn by the subset curve's own plotting code."""
    named = {**table, "protocol": {**table["protocol"], "data": "CIFAR-10 (JPEG q75 release)"}}
    with tempfile.TemporaryDirectory() as work:
        write_outputs(named, Path(work))
        shutil.copyfile(Path(work) / "curve.png", path)


@dataclass(frozen=True)
class HeadlineSet:
    """A headline set: its file, and the curve's own measurement of it when it is a series
    point (the curve's protocol is a headline protocol: measuring it again would repeat it)."""
    path: Path
    curve_row: dict | None = None


def headline_sets(work: Path, dm_dir: Path, table: dict, spec: str, make: bool
                  ) -> dict[str, HeadlineSet]:
    """The headline points that exist so far: our best series at 12,000 and 98,304 bits per
    class, vanilla DM IPC 10 at the table's count (its best), random real IPC 10 (made here when
    `make`)."""
    sets = {}
    for budget in HEADLINE_BUDGETS:
        ours = [p for p in table["points"] if p["series"] in SERIES
                and p.get("budget_bpc") == budget and p.get("file")]
        if ours:
            best = max(ours, key=lambda p: p["accuracy_mean"])
            sets[f"{best['series']} at {budget:,}"] = HeadlineSet(work / "points" / best["file"],
                                                                  best)
    # the 8-bit .ddz that benchmarks/cifar10.py measured, the file the honest ratio prices
    dm10 = [p for p in table["points"] if p["series"] == "pixels-8bit" and p.get("ipc") == 10]
    if dm10 and (dm_dir / f"dm-ipc10-{dm10[0]['iterations']}.ddz").is_file():
        n = dm10[0]["iterations"]
        sets[f"vanilla DM IPC 10, {n:,} iterations"] = HeadlineSet(dm_dir / f"dm-ipc10-{n}.ddz")
    # its 8-bit .ddz, lossless for real images: the bits a user holds, not a float tensor's
    random = work / "random-ipc10.ddz"
    if make and not random.is_file():
        from ddcodec import api

        floats = work / "random-ipc10.pt"
        api.distill(spec, floats, device="cpu", loss="none", ipc=10, seed=0, force=True)
        api.encode(floats, random, force=True, pixels="8bit")
    if random.is_file():
        sets["random real IPC 10"] = HeadlineSet(random)
    return sets


def set_images(path: Path) -> int:
    """How many images a set file trains on: a measurement's cost grows with it."""
    if path.suffix == ".ddz":
        from ddcodec import api

        return int(api.info(path)["num_images"])
    from ddcodec.sets.setfile import load_set

    return int(load_set(path).images.shape[0])


def set_bpc(path: Path) -> float:
    """A headline file's bits per class, for its row before any protocol has measured it."""
    from ddcodec import api

    return float(api.info(path)["bpc"])


def headline_rows(work: Path, sets: dict[str, HeadlineSet], compute: bool) -> list[dict]:
    """Each headline set under the curve's protocol and the field's (cached per set file and
    protocol): how far the short protocol moves a figure. The cheapest measurements run first
    (images x epochs x networks), so a run cut short by a session's end has answered the most."""
    curve = HEADLINE_PROTOCOLS[0]
    jobs = [(name, s, protocol) for name, s in sets.items() if s.path.is_file()
            for protocol in HEADLINE_PROTOCOLS]
    if compute:
        images = {name: set_images(s.path) for name, s in sets.items() if s.path.is_file()}
        jobs.sort(key=lambda job: images[job[0]] * job[2][0] * job[2][1])
    found = {}
    for name, headline, (epochs, runs) in jobs:
        def say(message: str, name=name) -> None:
            print(f"[{time.strftime('%H:%M:%S')}] headline, {name}: {message}", file=sys.stderr,
                  flush=True)

        if (epochs, runs) == curve and headline.curve_row:
            point = headline.curve_row
            row = {key: point[key] for key in ("accuracy_mean", "accuracy_std", "bpc",
                                               "images_per_class")}
            row["seconds"] = point.get("measure_seconds", 0.0)
        else:
            row = measured_file(headline.path, epochs, runs, work / "headline", compute, say=say)
        if row:
            found[name, epochs, runs] = {"set": name, "epochs": epochs, "runs": runs, **row}
    # the report's order: the sets as listed, each under the curve's protocol, then the field's
    return [found[key] for key in ((name, *protocol) for name in sets
                                   for protocol in HEADLINE_PROTOCOLS) if key in found]


def _cell(points: list[dict], series: str, budget: float) -> str:
    found = [p for p in points if p["series"] == series and p.get("budget_bpc") == budget]
    if not found:
        return "–"
    p = found[0]
    spent = p.get("phase2_iterations")
    return (f"{p['accuracy_mean']:.2f} ± {p['accuracy_std']:.2f} ({p['bpc']:,.0f}"
            + (f"; {spent} it." if spent else "") + ")")


def section(record: dict) -> str:
    table, budgets = record["table"], record["budgets"]
    points = table["points"]
    packed = ["jpeg", "webp", f"{LABELLED_RANDOM[0]}-q{LABELLED_RANDOM[1]}+vq"]
    lines = [HEADING, "",
             f"`python -m benchmarks.cifar10_series` ({record['date']}, {record['machine']}): "
             "CIFAR-10 (JPEG q75 release), 50,000 training images, measured on the 10,000 test "
             f"images ({table['protocol']['epochs']} epochs x {table['protocol']['runs']} "
             "ConvNet-D3, final epoch). Every series of ours: "
             f"{record['settings']['fit_iterations']} phase-1 and "
             f"{record['settings']['iterations']} phase-2 iterations, reference batch "
             f"{record['settings']['batch_real']}, at most {record['settings']['phase2_budget']} "
             "phase-2 iterations in all (rate control's retrain rounds included). Labels: VQ, "
             "from the CIFAR-10 teacher of the section above. Each cell: accuracy % (bits per "
             "class of the file; phase-2 iterations spent).", "",
             f"![rate-utility on CIFAR-10 (JPEG q75 release)]({PLOT})", "",
             "| series | " + " | ".join(f"{b:,.0f} bits/class" for b in budgets) + " |",
             "|---|" + "---:|" * len(budgets)]
    for name in (*SERIES, *packed):
        lines.append(f"| {name} | " + " | ".join(_cell(points, name, b) for b in budgets) + " |")
    missing = [(name, b) for name in SERIES for b in budgets if _cell(points, name, b) == "–"]
    seconds, timed, unique = curve_point_seconds([p for p in points if "budget_bpc" in p])
    head_s = sum(r["seconds"] for r in record.get("headline", []))
    # points resumed before their seconds were kept over processes (or from such a checkpoint)
    resumed = sum(1 for p in points if p.get("resumed") and not p.get("seconds_complete"))
    lines += ["", f"Computing so far: {seconds / 3600:.1f} CPU hours over {timed} of {unique} "
              f"points (distillation and measurement, every process that worked on them), "
              f"{head_s / 3600:.1f} h of headline measurements"
              + (f"; {resumed} point(s) resumed from a checkpoint before the seconds were kept "
                 "count only the time after it (a lower bound)" if resumed else "") + "."]
    lines += rate_control_misses(points)
    lines += ["", "Targets:"]
    for budget, target in TARGETS.items():
        ours = [p["accuracy_mean"] for p in points if p.get("budget_bpc") == budget
                and p["series"] in SERIES]
        done = len(ours) == len(SERIES)  # before then a miss may still turn into a hit
        verdict = ("not measured yet" if not ours else "met" if max(ours) >= target
                   else "not met" if done else "not met so far")
        if ours:
            verdict += f": best {max(ours):.2f} %" + ("" if done else
                                                     f" ({len(ours)} of {len(SERIES)} series)")
        lines.append(f"* {target:.0f} % or more at {budget:,} bits per class: {verdict}.")
    dm10 = [r for r in table["ratios"] if r["ipc"] == 10 and not r["cross_protocol"]]
    if dm10:
        best = max(dm10, key=lambda r: (r["ratio"] or 0, r["ratio_8bit"] or 0))
        met = ((best["ratio"] or 0) >= RATIO_TARGETS[0]
               and (best["ratio_8bit"] or 0) >= RATIO_TARGETS[1])
        verdict = "met" if met else "not met" if not missing else "not met so far"
        ours = max((p["accuracy_mean"] for p in points if p["series"] in SERIES), default=0)
        at_least = ["≥ " if best[k] else "" for k in ("lower_bound", "lower_bound_8bit")]
        found = (f"best: {best['series']}, "
                 + (f"{at_least[0]}{best['ratio']:.1f}x" if best["ratio"]
                    else "its float set not reached")
                 + " and "
                 + (f"{at_least[1]}{best['ratio_8bit']:.1f}x" if best["ratio_8bit"]
                    else "its file not reached")
                 if best["ratio"] or best["ratio_8bit"] else
                 f"no series of ours reaches its {best['reference_accuracy']:.2f} %"
                 + (f" (its 8-bit file: {best['reference_8bit_accuracy']:.2f} %)"
                    if best["reference_8bit_accuracy"] is not None else "")
                 + f" yet; our best point: {ours:.2f} %")
        lines.append(f"* equal-accuracy ratio against vanilla DM IPC 10 of "
                     f"{RATIO_TARGETS[0]:.0f}x in float32 and {RATIO_TARGETS[1]:.0f}x against "
                     f"its 8-bit file: {verdict} ({found}).")
    lines += ["", "| our series | reference | its accuracy % | its bits/class | ours at that "
              "accuracy | ratio (float32) | its 8-bit file: accuracy %, bits/class | ours at "
              "that accuracy | ratio (8-bit file) |",
              "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in table["ratios"]:
        if r["latent_bpc"] is None and r["latent_bpc_8bit"] is None:
            continue
        bound, bound_8bit = ("≥ " if r[k] else "" for k in ("lower_bound", "lower_bound_8bit"))
        ours = (f"{r['latent_bpc']:,.0f} | {bound}{r['ratio']:.1f}x" if r["ratio"]
                else "not reached | –")
        file = (f"{r['reference_8bit_accuracy']:.2f}, {r['reference_8bit_bpc']:,.0f}"
                if r["reference_8bit_bpc"] else "–")
        file_ours = (f"{r['latent_bpc_8bit']:,.0f} | {bound_8bit}{r['ratio_8bit']:.1f}x"
                     if r["ratio_8bit"] else "– | –")
        lines.append(f"| {r['series']} | {r['reference']} | {r['reference_accuracy']:.2f} | "
                     f"{r['reference_bpc']:,} | {ours} | {file} | {file_ours} |")
    lines += ["", "Vanilla DM rows are benchmarks/cifar10.py's, per IPC at the count of "
              "iterations whose float set measured best (the iterations column of its section); "
              "the papers' rows are cross-protocol (lossless originals, GPU, 1000 "
              "epochs x 5, 20,000 iterations). Each ratio is taken at its own reference's "
              "accuracy: the float set's, and its 8-bit .ddz's (rounding clips vanilla DM's "
              "out-of-range pixels). Ours at that accuracy: the series' bits where it first "
              "reaches it, interpolated in log bits between the two measured budgets around "
              "it, so a budget measured between them can move the ratio. A ratio marked ≥ is "
              "reached at the smallest budget measured."]
    head = record.get("headline", [])
    waiting = {name: bpc for name, bpc in record.get("headline_sets", {}).items()
               if not any(r["set"] == name for r in head)}  # sets no protocol measured yet
    if head or waiting:
        lines += ["", "Headline points under both protocols (the 10,000 test images; wall "
                  "minutes on one or two CPU threads in brackets; the last column: how far "
                  "the field's protocol moves the short one's figure):", "",
                  "| set | bits/class | 300 epochs x 3 | 1000 epochs x 5 | moved |",
                  "|---|---:|---:|---:|---:|"]
        for name in dict.fromkeys(r["set"] for r in head):
            cells = {(r["epochs"], r["runs"]): r for r in head if r["set"] == name}
            any_row = next(iter(cells.values()))
            short, field = (cells.get(k) for k in HEADLINE_PROTOCOLS)
            moved = (f"{field['accuracy_mean'] - short['accuracy_mean']:+.2f}"
                     if short and field else "–")
            lines.append(f"| {name} | {any_row['bpc']:,.0f} | " + " | ".join(
                f"{cells[k]['accuracy_mean']:.2f} ± {cells[k]['accuracy_std']:.2f} "
                f"({cells[k]['seconds'] / 60:.0f} min)" if k in cells else "to come"
                for k in HEADLINE_PROTOCOLS) + f" | {moved} |")
        lines += [f"| {name} | {bpc:,.0f} | to come | to come | – |"
                  for name, bpc in waiting.items()]
    lines += ["", "Beside the papers, at the same budgets (published figures: lossless "
              "originals, GPU distillation of thousands of iterations, 1000 epochs x 5; ours: "
              "the JPEG q75 release, CPU-length distillation, DM where the leaders use "
              "trajectory matching, 300 epochs x 3):", "",
              "| bits per class | ours (best series) | " + " | ".join(PAPERS) + " |",
              "|---:|---:|" + "---:|" * len(PAPERS)]
    for i, budget in enumerate(PAPER_BUDGETS):
        ours = [p for p in points if p["series"] in SERIES and p.get("budget_bpc") == budget]
        best = max(ours, key=lambda p: p["accuracy_mean"], default=None)
        mine = (f"{best['accuracy_mean']:.2f} ({best['series']})" if best
                else "not measured yet" if budget in budgets else "not in this run")
        lines.append(f"| {budget:,} | {mine} | "
                     + " | ".join(f"{v[i]:.1f}" for v in PAPERS.values()) + " |")
    lines += ["", "TM-RUO's figures are at its own nearest points (about 107,000 and 770,000 "
              "bits per class)."]
    if missing:
        lines += ["", "**Unfinished.** Still to measure: " + ", ".join(
            f"{n} at {b:,.0f}" for n, b in missing) + ". The run goes on from its cache with "
            "the same command."]
    return "\n".join(lines)


def main() -> None:
    parser = benchmark_parser(__doc__, report_only=True)
    parser.add_argument("--work", default=str(CACHE / "cifar10-series"))
    parser.add_argument("--budgets", type=float, nargs="+", default=list(BUDGETS))
    parser.add_argument("--teacher", default=str(CACHE / "cifar10-full" / "teacher.pt"),
                        help="benchmarks/cifar10.py's teacher (trained there first).")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    budgets = tuple(args.budgets)
    work, teacher = Path(args.work), Path(args.teacher)
    if args.quick:
        from ddcodec import api

        work = ROOT / "bench_runs" / "cifar10-series-quick"
        spec, budgets, teacher = "cifar10-subset", (6_000,), work / "teacher.pt"
        if not teacher.is_file():
            work.mkdir(parents=True, exist_ok=True)
            api.train_teacher(spec, teacher, device="cpu", epochs=1)
    else:
        spec = cifar10_jpeg(CIFAR10_DIR)
        if not teacher.is_file():
            sys.exit(f"cifar10_series: no teacher at {teacher}: run python -m benchmarks.cifar10 "
                     "first (it trains one on all 50,000 images)")
    config = series_config(spec, str(teacher), budgets, args.quick)
    started = time.perf_counter()
    dm_dir = CACHE / "cifar10-full"
    whole = replace(config, budgets=tuple(sorted(budgets)))

    def current() -> dict:
        return table_with_dm(PointStore(work), whole,
                             dm_points(ROOT / "docs" / "benchmarks" / "cifar10.json"))

    if not args.report_only:
        for budget in budgets:  # one budget at a time, in the order given
            run_curve(replace(config, budgets=(budget,)), work, "cpu",
                      on_event=lambda m: print(f"[{time.strftime('%H:%M:%S')}] {m}",
                                               file=sys.stderr, flush=True))
            if budget in HEADLINE_BUDGETS and not args.quick:  # the headline sets by now
                headline_rows(work, headline_sets(work, dm_dir, current(), spec, True), True)
    table = current()
    sets = {} if args.quick else headline_sets(work, dm_dir, table, spec, False)
    headline = headline_rows(work, sets, False)
    record = {"date": str(dt.date.today()), "version": __version__,
              "machine": platform.machine() + ("" if args.report_only
                                               else f", {args.threads} torch threads"),
              "budgets": sorted(budgets), "table": table, "headline": headline,
              "headline_sets": {name: set_bpc(s.path) for name, s in sets.items()},
              "settings": {"iterations": config.distill.matching.iterations,
                           "fit_iterations": config.distill.latent.fit_iterations,
                           "batch_real": config.distill.matching.batch_real,
                           "phase2_budget": config.phase2_budget},
              "seconds_this_run": time.perf_counter() - started}
    if not args.quick:
        draw_curve(table, Path(args.out).parent / PLOT)
    publish(args, "cifar10_series", HEADING, record, section(record))


if __name__ == "__main__":
    run(main)
