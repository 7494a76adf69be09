"""D3's subtask decomposition for trajectory matching on the CIFAR-10 subset: one task against
2 blocks of 5 classes, each matched to its own 5-way block experts, with hard labels and with
one global teacher's VQ soft labels at merge (D3's glue across blocks), at equal bits.

Latent TM with per-class decoders (blocks need them) at one budget; the experts and the teacher
are trained once into bench_runs/ (global experts as the curve's; block experts the same
settings per block). Each set is measured under the shortened protocol. Writes
docs/benchmarks/subtasks.json and the section "Subtasks (D3) for trajectory matching" of
docs/BENCHMARKS.md.

    python benchmarks/subtasks.py            # about 1.5 hours on 2 cores
    python benchmarks/subtasks.py --quick    # minutes, tiny settings, to check the script
"""

from __future__ import annotations

import datetime as dt
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from report import benchmark_parser, replace_section, write_record  # noqa: E402
from ddcodec import api  # noqa: E402

HEADING = "## Subtasks (D3) for trajectory matching"
BUDGET = 24_576  # per-class decoders cost about 8,000 bits per class: room for the images
TM = {"syn_steps": 10, "expert_epochs": 2, "max_start_epoch": 6, "batch_syn": 64}  # the curve's
ARMS = (("one task, global experts", 1, "hard"), ("2 subtasks, block experts", 2, "hard"),
        ("one task, global experts + VQ labels", 1, "vq"),
        ("2 subtasks, block experts + global VQ labels", 2, "vq"))


def main() -> None:
    parser = benchmark_parser(__doc__, ROOT)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    runs = ROOT / "bench_runs"
    if args.quick:
        experts_cfg, iterations, fit, epochs, nets, teacher_epochs = (1, 2), 2, 16, 2, 1, 1
        runs = runs / "subtasks-quick"
    else:
        experts_cfg, iterations, fit, epochs, nets, teacher_epochs = (4, 10), 40, 800, 300, 2, 15
    started = time.perf_counter()
    teacher = runs / "teacher.pt"
    if not teacher.is_file():
        teacher.parent.mkdir(parents=True, exist_ok=True)
        api.train_teacher("cifar10-subset", teacher, device="cpu", epochs=teacher_epochs)
    experts = {1: runs / "experts", 2: runs / "experts-blocks2"}
    for blocks, folder in experts.items():
        api.experts("cifar10-subset", folder, num_experts=experts_cfg[0], epochs=experts_cfg[1],
                    blocks=blocks, device="cpu")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, blocks, labels in ARMS:
            out = Path(tmp) / f"{blocks}-{labels}.ddz"
            t0 = time.perf_counter()
            options = dict(param="latent", loss="tm", target_bpc=BUDGET, iterations=iterations,
                           fit_iterations=fit, batch_real=64, experts=str(experts[blocks]),
                           blocks=blocks, **TM)
            if labels != "hard":
                options.update(labels=labels, teacher=str(teacher))
            distilled = api.distill("cifar10-subset", out, device="cpu", **options)
            report = api.measure(out, epochs=epochs, runs=nets, device="cpu")
            rows.append({"arm": name, "blocks": blocks, "labels": labels, "bpc": report["bpc"],
                         "accuracy_mean": report["accuracy_mean_percent"],
                         "accuracy_std": report["accuracy_std_percent"],
                         "within_tolerance": distilled.provenance.get("rate_control", {})
                         .get("within_tolerance"), "seconds": time.perf_counter() - t0})
            print(rows[-1], file=sys.stderr, flush=True)
    seconds = time.perf_counter() - started
    by = {(r["blocks"], r["labels"]): r["accuracy_mean"] for r in rows}
    lines = [HEADING, "",
             f"Measured {dt.date.today()} with `python benchmarks/subtasks.py` "
             f"({seconds / 60:.0f} min on 2 cores): latent TM, per-class decoders, "
             f"--target-bpc {BUDGET:,}, {fit} phase-1 and {iterations} phase-2 iterations, "
             f"TM {TM}; experts {experts_cfg[0]} x {experts_cfg[1]} epochs (global: 10-way; "
             "block: 5-way per block of 5 classes); VQ labels from one 10-way teacher "
             f"({teacher_epochs} epochs) on the merged set; {epochs} epochs x {nets} "
             "ConvNet-D3, final epoch.", "",
             "| arm | bits per class | accuracy % | minutes |", "|---|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['arm']} | {r['bpc']:,.0f} | {r['accuracy_mean']:.2f} ± "
                     f"{r['accuracy_std']:.2f} | {r['seconds'] / 60:.1f} |")
    lost = by[(1, "hard")] - by[(2, "hard")]
    recovered = by[(2, "vq")] - by[(2, "hard")]
    lines += ["", f"Splitting into 2 subtasks costs {lost:+.2f} points with hard labels (what "
                  "the cross-block part of the loss was worth); the global teacher's labels at "
                  f"merge move the subtask set by {recovered:+.2f} points "
                  f"({'recovering' if recovered > 0 else 'not recovering'} it"
                  f"{'' if lost <= 0 else f': {100 * recovered / lost:.0f} % of the loss'})."]
    text = "\n".join(lines)
    print(text)
    if args.quick:
        return
    write_record(Path(args.out), "subtasks", {"date": str(dt.date.today()), "rows": rows,
                                               "seconds": seconds})
    replace_section(Path(args.out), HEADING, text)


if __name__ == "__main__":
    main()
