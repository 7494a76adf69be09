"""D3's subtask decomposition for trajectory matching on the CIFAR-10 subset: one task against
2 blocks of 5 classes, each matched to its own 5-way block experts, with hard labels and with
one global teacher's VQ soft labels at merge (D3's glue across blocks), at equal bits.

Latent TM with per-class decoders (blocks need them) at one budget; the experts and the teacher
are trained once into bench_runs/ (global experts as the curve's; block experts the same
settings per block); the teacher is the curve's (benchmarks/cache/teacher.pt). Each set is
measured under the shortened protocol. Every arm's row is cached in benchmarks/cache/subtasks/
(keyed by its settings and the teacher's bytes), so a run resumes, and arms can be split over
processes (`--arms 0 2` and `--arms 1 3` with `--threads 1`: the global and the block experts).
The report is written once every arm has a row. Writes docs/benchmarks/subtasks.json and the
section "Subtasks (D3) for trajectory matching" of docs/BENCHMARKS.md.

    python -m benchmarks.subtasks            # about 1.5 hours on 2 cores
    python -m benchmarks.subtasks --quick    # minutes, tiny settings, to check the script
"""

from __future__ import annotations

import datetime as dt
import sys
import tempfile
import time
from pathlib import Path

import torch

from benchmarks.harness import (CACHE, ROOT, TEACHER, benchmark_parser, cached_row,
                                replace_section, run, spec_key, write_record)
from ddcodec import api
from ddcodec.reports.points import teacher_digest

HEADING = "## Subtasks (D3) for trajectory matching"
BUDGET = 24_576  # per-class decoders cost about 8,000 bits per class: room for the images
TM = {"syn_steps": 10, "expert_epochs": 2, "max_start_epoch": 6, "batch_syn": 64}  # the curve's
ARMS = (("one task, global experts", 1, "hard"), ("2 subtasks, block experts", 2, "hard"),
        ("one task, global experts + VQ labels", 1, "vq"),
        ("2 subtasks, block experts + global VQ labels", 2, "vq"))



def arm_row(arm: int, settings: dict, experts: Path, teacher: Path, store: Path,
            compute_missing: bool = True) -> dict | None:
    """One arm distilled and measured, or its cached row when these exact settings (and this
    teacher) were measured before (None when not, unless `compute_missing`)."""
    name, blocks, labels = ARMS[arm]
    options = dict(param="latent", loss="tm", target_bpc=BUDGET,
                   iterations=settings["iterations"], fit_iterations=settings["fit"],
                   batch_real=64, blocks=blocks, **TM)
    if labels != "hard":
        options.update(labels=labels)
    spec = {"options": options, "experts": settings["experts"], "epochs": settings["epochs"],
            "nets": settings["nets"],
            "teacher": teacher_digest(teacher) if labels != "hard" else None}
    path = store / f"{blocks}-{labels}-{spec_key(spec)}.json"

    def compute() -> dict:
        api.experts("cifar10-subset", experts, num_experts=settings["experts"][0],
                    epochs=settings["experts"][1], blocks=blocks, device="cpu")
        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / f"{blocks}-{labels}.ddz"
            extra = {"teacher": str(teacher)} if labels != "hard" else {}
            distilled = api.distill("cifar10-subset", out, device="cpu", experts=str(experts),
                                    **options, **extra)
            report = api.measure(out, epochs=settings["epochs"], runs=settings["nets"],
                                 device="cpu")
        row = {"arm": name, "blocks": blocks, "labels": labels, "bpc": report["bpc"],
               "accuracy_mean": report["accuracy_mean_percent"],
               "accuracy_std": report["accuracy_std_percent"],
               "within_tolerance": distilled.provenance.get("rate_control", {})
               .get("within_tolerance"), "seconds": time.perf_counter() - t0}
        print(row, file=sys.stderr, flush=True)
        return row

    return cached_row(path, spec, compute if compute_missing else None)


def ensure_teacher(path: Path, epochs: int) -> Path:
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        api.train_teacher("cifar10-subset", path, device="cpu", epochs=epochs)
    return path


def main() -> None:
    parser = benchmark_parser(__doc__, ROOT)
    parser.add_argument("--arms", type=int, nargs="+", default=list(range(len(ARMS))),
                        choices=range(len(ARMS)),
                        help="Measure only these arms (0-3, in the table's order).")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    runs = ROOT / "bench_runs"
    if args.quick:
        settings = {"experts": (1, 2), "iterations": 2, "fit": 16, "epochs": 2, "nets": 1}
        runs, store = runs / "subtasks-quick", runs / "subtasks-quick" / "rows"
        teacher = ensure_teacher(runs / "teacher.pt", 1)
    else:
        settings = {"experts": (4, 10), "iterations": 40, "fit": 800, "epochs": 300, "nets": 2}
        store, teacher = CACHE / "subtasks", ensure_teacher(TEACHER, 15)
    experts = {1: runs / "experts", 2: runs / "experts-blocks2"}
    for arm in args.arms:
        arm_row(arm, settings, experts[ARMS[arm][1]], teacher, store)
    rows = [arm_row(arm, settings, experts[ARMS[arm][1]], teacher, store, compute_missing=False)
            for arm in range(len(ARMS))]
    if None in rows:
        missing = [arm for arm, row in enumerate(rows) if row is None]
        print(f"subtasks: arms {missing} still to be measured; no report yet", file=sys.stderr)
        return
    seconds = sum(r["seconds"] for r in rows)
    experts_cfg, iterations, fit = settings["experts"], settings["iterations"], settings["fit"]
    epochs, nets = settings["epochs"], settings["nets"]
    by = {(r["blocks"], r["labels"]): r["accuracy_mean"] for r in rows}
    lines = [HEADING, "",
             f"Measured {dt.date.today()} with `python -m benchmarks.subtasks` "
             f"({seconds / 60:.0f} min of distilling and measuring): latent TM, per-class "
             f"decoders, --target-bpc {BUDGET:,}, {fit} phase-1 and {iterations} phase-2 "
             f"iterations, TM {TM}; experts {experts_cfg[0]} x {experts_cfg[1]} epochs "
             "(global: 10-way; "
             "block: 5-way per block of 5 classes); VQ labels from one 10-way teacher "
             f"(the curve's, benchmarks/cache/teacher.pt) on the merged set; {epochs} epochs "
             f"x {nets} ConvNet-D3, final epoch.", "",
             "| arm | bits per class | accuracy % | minutes |", "|---|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['arm']} | {r['bpc']:,.0f} | {r['accuracy_mean']:.2f} ± "
                     f"{r['accuracy_std']:.2f} | {r['seconds'] / 60:.1f} |")
    lost = by[(1, "hard")] - by[(2, "hard")]
    recovered = by[(2, "vq")] - by[(2, "hard")]
    glue = by[(1, "vq")] - by[(1, "hard")]
    if lost > 0:
        split = (f"Splitting into 2 subtasks costs {lost:.2f} points with hard labels (what the "
                 "cross-block part of the loss was worth); the global teacher's labels at merge "
                 f"move the subtask set by {recovered:+.2f} points ("
                 + (f"{100 * recovered / lost:.0f} % of the loss)." if recovered > 0 else
                    "not recovering it)."))
    else:
        spread = sum(r["accuracy_std"] for r in rows if r["labels"] == "hard")
        split = (f"Splitting into 2 subtasks costs nothing here: with hard labels the subtask "
                 f"set is {-lost:+.2f} points against one task ("
                 f"{'within' if -lost <= spread else 'beyond'} the two runs' spreads; its block "
                 "experts learn easier 5-way trajectories), so there is no cross-block loss for "
                 "the teacher's labels to recover; they add "
                 f"{recovered:+.2f} points to the subtask set at merge, and {glue:+.2f} to one "
                 "task.")
    lines += ["", split]
    text = "\n".join(lines)
    print(text)
    if args.quick:
        return
    write_record(Path(args.out), "subtasks", {"date": str(dt.date.today()), "rows": rows,
                                               "seconds": seconds})
    replace_section(Path(args.out), HEADING, text)


if __name__ == "__main__":
    run(main)
