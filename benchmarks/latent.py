"""The rate-utility model on the bundled CIFAR-10 subset, on CPU.

Two experiments, written to docs/BENCHMARKS.md (section "Rate-utility model") and
docs/benchmarks/latent.json:

1. The seed's first experiment: phase 1 alone (a v4 decoder per class and its latents fitted to
   real images) reconstructs real CIFAR images; PSNR of the final 8-bit images (after weight
   quantisation) against bits per image, for a few rate weights.
2. Latent-DM sets at two budgets, the bpc of vanilla IPC 1 and IPC 10 stored as 8-bit pixels
   (24,576 and 245,760 bits per class), measured under the same shortened protocol as the
   baselines (docs/benchmarks/baselines.json, whose seeded runs are deterministic) and compared
   with them. Also the time per iteration of each phase.

    python -m benchmarks.latent            # about an hour on 2 cores
    python -m benchmarks.latent --quick    # minutes, to check the script
"""

from __future__ import annotations

import datetime as dt
import json
import math
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch

from ddcodec import __version__, api
from benchmarks.harness import ROOT, benchmark_parser, replace_section, run, write_record
from ddcodec.data.datasets import load_dataset
from ddcodec.distillation import DistillConfig
from ddcodec.distillation.latent import LatentTrainer

BITS_PER_8BIT_IMAGE = 3 * 32 * 32 * 8
FIT_WEIGHTS = (1e-2, 1e-3, 1e-4)

# Operating points: (budget name, IPC whose 8-bit size is the budget, distillation settings).
POINTS = [
    ("IPC 1 budget", 1, dict(spc=20, decoder="v0", arm_context=16, arm_hidden=2,
                             fit_rate_weight=1e-2, fit_iterations=1000, fit_candidates=5,
                             lmbda=0.1, iterations=200)),
    ("IPC 10 budget", 10, dict(spc=50, decoder="v0", arm_context=16, arm_hidden=2,
                               fit_rate_weight=1e-4, fit_iterations=1000, fit_candidates=3,
                               lmbda=0.1, iterations=100)),
]


def _training_step(event) -> bool:
    """A phase-1 or phase-2 training step (not a plan, a note or work between steps)."""
    return event.kind == "step" and "seconds" in event.info


def fit_experiment(args) -> list[dict]:
    dataset = load_dataset("cifar10-subset")
    rows = []
    for weight in FIT_WEIGHTS:
        config = DistillConfig.of(param="latent", spc=args.fit_spc, decoder="v4",
                                  fit_iterations=args.fit_iterations, fit_candidates=3,
                                  fit_rate_weight=weight, iterations=0, seed=0)
        stamps: list[float] = []
        trainer = LatentTrainer(dataset, config, torch.device("cpu"),
                                on_progress=lambda e: _training_step(e) and stamps.append(
                                    time.perf_counter()))
        images, payload, _ = trainer.run()
        targets = (trainer.targets.flatten(0, 1) * 255).round()
        mse = ((images.float() - targets) ** 2).flatten(1).mean(1) / 255 ** 2
        psnr = (10 * torch.log10(1 / mse.clamp_min(1e-10))).tolist()
        bits = payload.estimated_bits.to_dict()
        n = images.shape[0]
        rows.append({
            "fit_rate_weight": weight, "psnr_mean": statistics.fmean(psnr),
            "psnr_min": min(psnr), "latent_bits_per_image": bits["latents"] / n,
            "total_bits_per_image": bits["total"] / n, "bits": bits,
            "seconds_per_iteration": _median_step(stamps),
        })
        print(f"fit w={weight:g}: {rows[-1]['psnr_mean']:.2f} dB, "
              f"{rows[-1]['latent_bits_per_image']:.0f} latent bits/image", flush=True)
    return rows


def budget_experiment(args) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, ipc, settings in POINTS:
            budget = ipc * BITS_PER_8BIT_IMAGE
            path = Path(tmp) / f"latent_ipc{ipc}.pt"
            stamps = {1: [], 2: []}
            started = time.perf_counter()
            distilled = api.distill(
                "cifar10-subset", path, device="cpu", param="latent", loss="dm",
                batch_real=args.batch_real, seed=0, **settings,
                on_progress=lambda e: _training_step(e) and stamps[e.phase].append(
                    time.perf_counter()))
            distill_s = time.perf_counter() - started
            ddz_path = path.with_suffix(".ddz")
            data, _ = api.encode(path, ddz_path)
            report = api.measure(ddz_path, epochs=args.epochs, runs=args.runs, device="cpu")
            bits = distilled.provenance["estimated_bits"]
            rows.append({
                "name": name, "ipc_equivalent": ipc, "budget_bpc": budget,
                "settings": settings, "bpc": report["bpc"], "file_bytes": len(data),
                "estimated_bpc": bits["total"] / 10,
                "bpc_parts": {k: v / 10 for k, v in bits.items() if k != "total"},
                "within_budget": report["bpc"] <= budget,
                "fit_psnr": distilled.provenance["fit_psnr"],
                "accuracy_mean": report["accuracy_mean"], "accuracy_std": report["accuracy_std"],
                "accuracies": report["accuracies"], "distill_seconds": distill_s,
                "phase1_s_per_it": _median_step(stamps[1]),
                "phase2_s_per_it": _median_step(stamps[2]),
            })
            print(f"{name}: {100 * report['accuracy_mean']:.2f} ± "
                  f"{100 * report['accuracy_std']:.2f} % at {report['bpc']:,.0f} bpc from the "
                  f".ddz (budget {budget:,})", flush=True)
    return rows


def _median_step(stamps: list[float]) -> float:
    gaps = [b - a for a, b in zip(stamps[:-1], stamps[1:])]
    return statistics.median(gaps) if gaps else math.nan


def main() -> None:
    parser = benchmark_parser(__doc__)
    parser.add_argument("--epochs", type=int, default=300)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--fit-iterations", type=int, default=1500)
    parser.add_argument("--fit-spc", type=int, default=4)
    parser.add_argument("--batch-real", type=int, default=64)
    parser.add_argument("--skip-fit", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.epochs, args.runs, args.fit_iterations = 3, 1, 16
        for _, _, settings in POINTS:
            settings["iterations"], settings["fit_iterations"] = 2, 16
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    fit_rows = [] if args.skip_fit else fit_experiment(args)
    budget_rows = budget_experiment(args)
    baselines_path = ROOT / "docs" / "benchmarks" / "baselines.json"
    baselines = json.loads(baselines_path.read_text()) if baselines_path.exists() else None
    record = {
        "date": dt.date.today().isoformat(), "ddcodec_version": __version__,
        "machine": f"{platform.machine()}, {args.threads} torch thread(s)",
        "torch": torch.__version__, "args": vars(args), "fit": fit_rows, "budgets": budget_rows,
        "baselines": baselines["results"] if baselines else [],
        "wall_s": time.perf_counter() - started,
    }
    write_outputs(record, Path(args.out))


def write_outputs(record: dict, out: Path) -> None:
    previous_path = out.parent / "benchmarks" / "latent.json"
    previous = json.loads(previous_path.read_text()) if previous_path.exists() else {}
    if not record["fit"] and previous.get("fit"):
        record["fit"], record["fit_date"] = previous["fit"], previous.get("fit_date", previous["date"])
    else:
        record["fit_date"] = record["date"]
    json_path = write_record(out, "latent", record)
    a = record["args"]
    lines = ["## Rate-utility model (CIFAR-10 subset, CPU)", "",
             f"Produced by `python -m benchmarks.latent` on {record['date']} (ddcodec "
             f"{record['ddcodec_version']}, torch {record['torch']}, {record['machine']}); took "
             f"{record['wall_s'] / 60:.0f} min. Raw numbers: `docs/benchmarks/latent.json`.", ""]
    if record["fit"]:
        lines += [
            "### Phase 1 alone: reconstructing real images",
            "",
            f"A v4 decoder (7,851 synthesis parameters) and ARM 16x2 per class, fitted to "
            f"{a['fit_spc']} real images of each class ({10 * a['fit_spc']} images) for "
            f"{a['fit_iterations']} iterations (3 warm-up candidates), then post-quantised "
            f"(MSE threshold 5e-6); PSNR of the final 8-bit "
            f"images against the originals (measured {record['fit_date']}). Bits per image: the "
            "latents alone, and everything (latents + the decoder shared by the class's "
            "images + labels) divided by the number of images.",
            "",
            "| rate weight | PSNR mean (dB) | PSNR worst (dB) | latent bits / image | total bits / image |",
            "|---:|---:|---:|---:|---:|",
        ]
        for r in record["fit"]:
            lines.append(f"| {r['fit_rate_weight']:g} | {r['psnr_mean']:.2f} | {r['psnr_min']:.2f}"
                         f" | {r['latent_bits_per_image']:,.0f} | {r['total_bits_per_image']:,.0f} |")
        lines += ["", f"For scale: an 8-bit image is {BITS_PER_8BIT_IMAGE:,} bits.", ""]
    lines += [
        "### Latent-DM against vanilla baselines at equal or smaller budgets",
        "",
        f"Same shortened protocol as the baselines ({a['epochs']} epochs, {a['runs']} networks, "
        f"seeds 0..{a['runs'] - 1}, final-epoch accuracy on the 1,017 test images). Latent sets: "
        f"phase-1 and phase-2 iterations as listed (DM with {a['batch_real']} real images per "
        "class), then weight post-quantisation; each set is encoded to a `.ddz` and **bpc is "
        "counted from that file** (8 x bytes / classes: header, weights, latents, checksums), and "
        "accuracy is measured on what the file decodes to. Baselines: float32 `set.pt` files; "
        "their 8-bit size (3,072 bytes per image) defines the budgets.",
        "",
        "| set | bits per class | accuracy (%) |",
        "|---|---:|---:|",
    ]
    for r in record["budgets"]:
        st = r["settings"]
        lines.append(f"| **latent-DM** ({r['name']}: ≤ {r['budget_bpc']:,} bpc; "
                     f"{st['spc']} samples/class, decoder {st['decoder']}, "
                     f"λ {st['lmbda']:g}, {st['fit_iterations']} + {st['iterations']} "
                     f"iterations) | {r['bpc']:,.0f} | "
                     f"**{100 * r['accuracy_mean']:.2f} ± {100 * r['accuracy_std']:.2f}** |")
        for b in record["baselines"]:
            if b["ipc"] == r["ipc_equivalent"]:
                lines.append(f"| {b['label']} IPC {b['ipc']} (8-bit: "
                             f"{b['ipc'] * BITS_PER_8BIT_IMAGE:,}; float32 as stored: "
                             f"{b['bpc']:,.0f}) | {b['ipc'] * BITS_PER_8BIT_IMAGE:,} | "
                             f"{100 * b['accuracy_mean']:.2f} ± {100 * b['accuracy_std']:.2f} |")
    lines += ["", "bpc breakdown of the latent sets (bits per class, the model's estimates; the "
              "file adds its header and checksums):", "",
              "| set | latents | ARM | upsampler | synthesis | labels | estimated total | file | "
              "phase-1 PSNR (dB) |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in record["budgets"]:
        p = r["bpc_parts"]
        lines.append(f"| {r['name']} | {p['latents']:,.0f} | {p['arm']:,.0f} | "
                     f"{p['upsampler']:,.0f} | {p['synthesis']:,.0f} | {p['labels']:,.0f} | "
                     f"{r['estimated_bpc']:,.0f} | {r['bpc']:,.0f} | {r['fit_psnr']:.1f} |")
    lines += ["", "Time per iteration on this CPU (median):", "",
              "| set | phase 1 (s/it) | phase 2 (s/it) | whole distillation (min) |",
              "|---|---:|---:|---:|"]
    for r in record["budgets"]:
        lines.append(f"| {r['name']} | {r['phase1_s_per_it']:.3f} | {r['phase2_s_per_it']:.2f} | "
                     f"{r['distill_seconds'] / 60:.1f} |")
    lines.append("")
    replace_section(out, "## Rate-utility model", "\n".join(lines))
    print(f"wrote {out} and {json_path}")


if __name__ == "__main__":
    run(main)
