"""The soft-label ladder on the CIFAR-10 subset: one teacher, one set of images, every rung.

For random real images at a few IPCs, the same images are measured with hard labels and with
the teacher's static soft labels stored in each rung (float16; top-k; VQ at several k), each
encoded to a real .ddz so the label bits are counted from the file. Writes docs/BENCHMARKS.md
(section "Soft labels: the ladder") and docs/benchmarks/labels.json.

`--per-epoch` measures the ladder of per-epoch labels instead (FKD style: one label per image
and training epoch, each on its keyed view, replayed by measure) at IPC 10 over the protocol's
epochs, and the paper's claim: the VQ compression ratio against float16 at 90 % or more of
float16's accuracy. Section "Soft labels per epoch: the ladder", docs/benchmarks/label_epochs.json.

`--tiny` measures the static ladder on Tiny-ImageNet-200 (200 classes, 64 x 64), where the VQ
autoencoder should earn its place, with settings sized for 2 CPU cores (stated in the section):
section "Soft labels on Tiny-ImageNet-200: the ladder", docs/benchmarks/labels_tiny.json.

    python -m benchmarks.labels              # about 25 minutes on 2 cores
    python -m benchmarks.labels --per-epoch  # about 25 minutes on 2 cores
    python -m benchmarks.labels --tiny       # about 2 hours on 2 cores
    python -m benchmarks.labels --quick      # a few minutes, prints only
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import tempfile
import time
from pathlib import Path

import torch

from ddcodec import __version__, api
from benchmarks.harness import ROOT, benchmark_parser, replace_section, run, write_record

HEADING = "## Soft labels: the ladder (CIFAR-10 subset, CPU)"
EPOCH_HEADING = "## Soft labels per epoch: the ladder (CIFAR-10 subset, CPU)"
TINY_HEADING = "## Soft labels on Tiny-ImageNet-200: the ladder (CPU)"
TINY = f"imagefolder:{ROOT.parent / 'shared' / 'data' / 'tiny-imagenet-200'}"


def rungs(args) -> list[tuple[str, str, int | None]]:
    """(name, codec, k) of every rung measured, hard labels first."""
    out = [("hard labels", "hard", None), ("float16", "float16", None)]
    out += [(f"top-{k}", "topk", k) for k in args.topk]
    out += [(f"VQ k={k}", "vq", k) for k in args.vq]
    out += [(f"VQAE k={k}", "vqae", k) for k in args.vqae]
    return out


def measure_ladder(args, tmp: Path) -> dict:
    data = args.data
    if args.tiny and args.classes < 200:  # the record keeps args.data: no temporary path
        from benchmarks.harness import class_subset

        data = f"imagefolder:{class_subset(args.classes, tmp / 'data')}"
    teacher_path = tmp / "teacher.pt"
    started = time.perf_counter()
    teacher = api.train_teacher(data, teacher_path, device="cpu",
                                epochs=args.teacher_epochs)
    teacher_seconds = time.perf_counter() - started
    rows = []
    label_epochs = args.epochs if args.per_epoch else 0
    for ipc in args.ipc:
        images = api.distill(data, None, loss="none", ipc=ipc, seed=args.seed)
        classes = images.num_classes
        for name, codec, k in rungs(args):
            labelled = images if codec == "hard" else api.label(
                images, teacher_path, codec=codec, k=k, temperature=args.temperature,
                device="cpu", epochs=label_epochs, view_seed=args.seed)
            data, _ = api.encode(labelled)
            report = api.measure(labelled, epochs=args.epochs, runs=args.runs, device="cpu",
                                 seed=args.seed)
            decoded = api.decode(data)
            label_bits = 8 * decoded.section_bytes.get("labels", 0)
            rows.append({"ipc": ipc, "rung": name, "codec": codec, "k": k,
                         "accuracy_mean": 100 * report["accuracy_mean"],
                         "accuracy_std": 100 * report["accuracy_std"],
                         "bpc": 8 * len(data) / classes, "label_bpc": label_bits / classes,
                         "float16_label_bpc": 16 * classes * ipc * max(1, label_epochs)})
            print(f"IPC {ipc:2d} {name:12s} {rows[-1]['accuracy_mean']:6.2f} ± "
                  f"{rows[-1]['accuracy_std']:.2f} %  labels {rows[-1]['label_bpc']:8,.0f} "
                  f"bits/class", flush=True)
    return {"teacher": {k: teacher.info[k] for k in ("epoch", "chosen_holdout_accuracy",
                                                     "test_accuracy", "held_out_images")},
            "teacher_seconds": teacher_seconds, "rows": rows}


def paper_claim(rows: list[dict]) -> str:
    """The VQ rung with the fewest label bits at >= 90 % of float16's accuracy, and its
    compression ratio against float16 (the paper: 30-40x)."""
    lines = []
    for ipc in sorted({r["ipc"] for r in rows}):
        mine = [r for r in rows if r["ipc"] == ipc]
        f16 = next(r for r in mine if r["codec"] == "float16")
        hard = next(r for r in mine if r["codec"] == "hard")
        keeps = [r for r in mine if r["codec"] == "vq"
                 and r["accuracy_mean"] - hard["accuracy_mean"] >= 0.9 * (
                     f16["accuracy_mean"] - hard["accuracy_mean"])]
        plain = [r for r in mine if r["codec"] == "vq"
                 and r["accuracy_mean"] >= 0.9 * f16["accuracy_mean"]]
        for what, found in (("90 % of float16's accuracy", plain),
                            ("90 % of float16's gain over hard labels", keeps)):
            if found:
                best = min(found, key=lambda r: r["label_bpc"])
                lines.append(f"* IPC {ipc}, {what} ({f16['accuracy_mean']:.2f} % float16, "
                             f"{hard['accuracy_mean']:.2f} % hard): {best['rung']} keeps it "
                             f"with {best['label_bpc']:,.0f} label bits per class against "
                             f"float16's {f16['label_bpc']:,.0f}: "
                             f"**{f16['label_bpc'] / best['label_bpc']:.0f}x** smaller.")
            else:
                lines.append(f"* IPC {ipc}, {what}: no VQ rung measured keeps it.")
    return "\n".join(lines)


def tiny_note(args) -> str:
    if not args.tiny:
        return ""
    return ("Tiny-ImageNet-200 (`../shared/data/tiny-imagenet-200`: 200 classes, 64 × 64, 200 "
            "training images per class, tested on the official 50 validation images per class), "
            "with settings sized for 2 CPU cores: "
            f"{'all 200 classes' if args.classes >= 200 else f'its first {args.classes} classes'}"
            ", a teacher of "
            f"{args.teacher_epochs} epochs and a protocol of {args.epochs} epochs × "
            f"{args.runs} network (not the field's). ")


def section(result: dict, args, seconds: float) -> str:
    t = result["teacher"]
    heading = EPOCH_HEADING if args.per_epoch else TINY_HEADING if args.tiny else HEADING
    what = (f"Per-epoch soft labels: one per image for each of the {args.epochs} epochs, on "
            "the image's view keyed by (seed, epoch, image), replayed by measure in place of "
            "its random augmentation. " if args.per_epoch else "")
    lines = [heading, "",
             f"Measured {dt.date.today()} on {platform.machine()} ({os.cpu_count()} cores), "
             f"torch {torch.__version__}, ddcodec {__version__}, by `python "
             f"benchmarks/labels.py{' --per-epoch' * args.per_epoch}{' --tiny' * args.tiny}` "
             f"in {seconds / 60:.0f} min.", "", what + tiny_note(args) +
             f"Teacher: ConvNet-D3, {args.teacher_epochs} epochs on the training split less a "
             f"held-out {t['held_out_images']:,} images, checkpoint of epoch {t['epoch']} chosen "
             f"on them ({100 * t['chosen_holdout_accuracy']:.1f} %); its test accuracy "
             f"{100 * t['test_accuracy']:.1f} % (reported only). Soft labels at T = "
             f"{args.temperature:g}, soft cross-entropy. Images: random real, seed {args.seed}. "
             f"Accuracy: {args.epochs} epochs × {args.runs} ConvNet-D3 (shortened protocol), "
             "final epoch. Bits per class are the whole `.ddz`; label bits its labels "
             "section; float16 is the papers' count of the same labels.", "",
             "| IPC | labels | accuracy (%) | label bits/class | float16 count | file bits/class |",
             "|---:|---|---:|---:|---:|---:|"]
    for r in result["rows"]:
        f16 = "–" if r["codec"] == "hard" else f"{r['float16_label_bpc']:,.0f}"
        lines.append(f"| {r['ipc']} | {r['rung']} | {r['accuracy_mean']:.2f} ± "
                     f"{r['accuracy_std']:.2f} | {r['label_bpc']:,.0f} | {f16} | "
                     f"{r['bpc']:,.0f} |")
    if args.per_epoch:
        lines += ["", "The paper's claim (VQ keeps more than 90 % of the accuracy with 30-40x "
                      "fewer label bits), at this scale:", "", paper_claim(result["rows"])]
    return "\n".join(lines)


def main() -> None:
    parser = benchmark_parser(__doc__)
    parser.add_argument("--ipc", type=int, nargs="+", default=[1, 10])
    parser.add_argument("--topk", type=int, nargs="+", default=[2])
    parser.add_argument("--vq", type=int, nargs="+", default=[8, 32])
    parser.add_argument("--teacher-epochs", type=int, default=15)
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--epochs", type=int, default=300)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--vqae", type=int, nargs="+", default=[])
    parser.add_argument("--tiny", action="store_true",
                        help="The static ladder on Tiny-ImageNet-200 (IPC 10; VQ and VQAE).")
    parser.add_argument("--classes", type=int, default=None,
                        help="With --tiny: the first N classes (a subset for a shorter run; "
                             "default all 200).")
    parser.add_argument("--per-epoch", action="store_true",
                        help="The per-epoch ladder (IPC 10; top-2, VQ 16-1024) instead.")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    args.data = TINY if args.tiny else "cifar10-subset"
    if args.classes is not None and not args.tiny:
        parser.error("--classes needs --tiny (the CIFAR-10 ladders use all 10 classes)")
    args.classes = 200 if args.classes is None else args.classes
    if not 1 < args.classes <= 200:
        parser.error("--classes: from 2 to Tiny-ImageNet's 200")
    if args.per_epoch and not args.quick:
        args.ipc, args.vq = [10], [16, 64, 256, 1024]
    if args.tiny and not args.quick:  # sized for 2 CPU cores: a teacher epoch of 40,000 64 x 64
        # images takes about 10 minutes, a protocol epoch of 2,000 about 20 s
        args.ipc, args.vq, args.vqae, args.topk = [10], [64, 256], [64, 256], []
        args.teacher_epochs, args.epochs, args.runs = 3, 30, 1
    if args.quick:
        args.ipc, args.vq, args.teacher_epochs, args.epochs, args.runs = [1], [4], 1, 3, 1
        args.vqae = [4]
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        result = measure_ladder(args, Path(tmp))
    seconds = time.perf_counter() - started
    text = section(result, args, seconds)
    print(text)
    if args.quick:
        return
    out = Path(args.out)
    name = "label_epochs" if args.per_epoch else "labels_tiny" if args.tiny else "labels"
    write_record(out, name, {"date": str(dt.date.today()), **result, "settings": vars(args),
                             "seconds": seconds})
    replace_section(out, text.splitlines()[0], text)


if __name__ == "__main__":
    run(main)
