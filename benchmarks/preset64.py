"""Which latent preset for 64 x 64 images: a small rate-distortion study on Tiny-ImageNet.

Phase 1 alone (the overfitted compression of real images, where the preset decides how many
bits a given quality costs), for every combination of grid levels, synthesis preset and ARM
context below, at two rate weights: each run's real .ddz is encoded (latents, decoders and ARM
counted) and its decoded images compared with the real ones they fit. The preset to keep is the
one whose rate-distortion points lie highest (PSNR at equal bits per pixel of the whole file,
interpolated in log bits between its two points). Each point is cached in
benchmarks/cache/preset64/ (keyed by its settings), so an interrupted study resumes. Writes
docs/benchmarks/preset64.json and the section "Latent preset for 64 x 64 images" of
docs/BENCHMARKS.md.

    python -m benchmarks.preset64            # about 45 minutes on 2 cores
    python -m benchmarks.preset64 --quick    # a minute, to check the script
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
import sys
import time
from pathlib import Path

import torch

from benchmarks.harness import (CACHE, ROOT, TINY, benchmark_parser, cached_row, replace_section,
                                run, spec_key, write_record)
from ddcodec.bitstream.codec import encode_set
from ddcodec.data.datasets import load_dataset
from ddcodec.distillation import DistillConfig
from ddcodec.distillation.latent import LatentTrainer
from ddcodec.distillation.output import latent_set

HEADING = "## Latent preset for 64 x 64 images"
GRID = {"levels": (6, 7), "decoder": ("v0", "v3-2", "v4"), "arm_context": (8, 16)}
RATE_WEIGHTS = (1e-3, 1e-2)


def point(dataset, classes: range, spc: int, fit_iterations: int, weight: float,
          options: dict) -> dict:
    """Fit, quantise and encode one preset; bits per pixel of the whole file and PSNR of the
    decoded images against the real images they fit."""
    config = DistillConfig.of(param="latent", loss="dm", spc=spc, fit_iterations=fit_iterations,
                              iterations=0, shared_decoder=True, fit_rate_weight=weight,
                              **options)
    trainer = LatentTrainer(dataset, config, torch.device("cpu"), classes=classes)
    started = time.perf_counter()
    images, payload, _ = trainer.run()
    seconds = time.perf_counter() - started
    target = trainer.targets[0]
    mse = ((images.float() / 255 - target) ** 2).mean().item()
    local = dataset.of_classes(classes)
    data, _ = encode_set(latent_set(local, config, images, payload, {}))
    pixels = images.shape[0] * images.shape[-2] * images.shape[-1]
    return {**options, "rate_weight": weight, "bpp": 8 * len(data) / pixels,
            "psnr": 10 * math.log10(1 / mse), "seconds": seconds}


def cached_point(store: Path | None, dataset, classes: range, spc: int, fit_iterations: int,
                 weight: float, options: dict) -> dict:
    """`point`, read from `store` when this exact setting was measured before."""
    spec = {**options, "rate_weight": weight, "classes": list(classes), "spc": spc,
            "fit_iterations": fit_iterations}
    path = (store / f"{options['levels']}-{options['decoder']}-{options['arm_context']}-"
                    f"{spec_key(spec)}.json") if store else None
    return cached_row(path, spec, lambda: point(dataset, classes, spc, fit_iterations, weight,
                                                options))


def psnr_at(points: list[dict], bpp: float) -> float | None:
    """A preset's PSNR at `bpp`, interpolated in log bits between its points (None outside)."""
    pts = sorted(points, key=lambda p: p["bpp"])
    for lo, hi in zip(pts, pts[1:]):
        if lo["bpp"] <= bpp <= hi["bpp"]:
            t = (math.log(bpp) - math.log(lo["bpp"])) / (math.log(hi["bpp"])
                                                          - math.log(lo["bpp"]))
            return lo["psnr"] + t * (hi["psnr"] - lo["psnr"])
    return None


TIE_DB = 0.2  # PSNR gaps below this count as ties: one fit per point, its seed spread unmeasured


def default_preset() -> tuple[int, str, int]:
    """What `ddcodec distill` uses on 64 x 64 images without options."""
    from ddcodec.codec.latents import LatentLayout

    config = DistillConfig()
    return (config.latent.levels or LatentLayout.default_levels(64, 64), config.latent.decoder,
            config.latent.arm_context)


def verdict(ranked: list[tuple[float | None, tuple]]) -> str:
    """The preset to keep: the default unless another is clearly (TIE_DB) better."""
    best_value, best = ranked[0]
    default = default_preset()
    mine = next((v for v, key in ranked if key == default), None)
    words = f"levels {best[0]}, synthesis {best[1]}, ARM context {best[2]}"
    if best == default:
        return f"Best: {words}, the default for 64 x 64 images."
    if mine is not None and best_value - mine < TIE_DB:
        return (f"Best: {words}, {best_value - mine:.2f} dB above the default (levels "
                f"{default[0]}, {default[1]}, context {default[2]}), within {TIE_DB} dB: a tie, "
                "so the default stays.")
    gap = "not comparable" if mine is None else f"{best_value - mine:.2f} dB below"
    return (f"Best: {words}; the default (levels {default[0]}, {default[1]}, context "
            f"{default[2]}) is {gap}: the 64 x 64 preset should change.")


def main() -> None:
    parser = benchmark_parser(__doc__, ROOT)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    dataset = load_dataset(f"imagefolder:{TINY}")
    grid = GRID
    if args.quick:
        classes, spc, fit = range(2), 1, 8
        grid = {"levels": (7,), "decoder": ("v0",), "arm_context": (8, 16)}
    else:
        classes, spc, fit = range(5), 4, 600
    started = time.perf_counter()
    rows = []
    for values in itertools.product(*grid.values()):
        options = dict(zip(grid, values))
        for weight in RATE_WEIGHTS:
            rows.append(cached_point(None if args.quick else CACHE / "preset64", dataset,
                                     classes, spc, fit, weight, options))
            print(rows[-1], file=sys.stderr, flush=True)
    seconds = time.perf_counter() - started
    presets = {}
    for row in rows:
        key = (row["levels"], row["decoder"], row["arm_context"])
        presets.setdefault(key, []).append(row)
    # compare at the median bpp of every point: where most presets have both sides
    common = sorted(r["bpp"] for r in rows)[len(rows) // 2]
    ranked = sorted(((psnr_at(pts, common), key) for key, pts in presets.items()),
                    key=lambda x: -(x[0] if x[0] is not None else -1e9))
    lines = [HEADING, "",
             f"Measured {dt.date.today()} with `python -m benchmarks.preset64` "
             f"({sum(r['seconds'] for r in rows) / 60:.0f} min of fitting in all, "
             f"{args.threads} torch thread(s)): phase 1 only ({fit} iterations, 5 candidates), "
             f"{spc} real images of each of the first {len(classes)} "
             "Tiny-ImageNet-200 classes, one shared decoder; the whole .ddz counted (latents, "
             "decoder, ARM, header). Rate weights "
             f"{', '.join(f'{w:g}' for w in RATE_WEIGHTS)}.", "",
             "| levels | synthesis | ARM context | bits per pixel | PSNR dB | seconds |",
             "|---:|---|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['levels']} | {r['decoder']} | {r['arm_context']} | "
                     f"{r['bpp']:.3f} | {r['psnr']:.2f} | {r['seconds']:.0f} |")
    lines += ["", f"PSNR at {common:.3f} bits per pixel (interpolated; – where a preset's "
                  "points do not span it):", ""]
    for value, key in ranked:
        lines.append(f"* levels {key[0]}, {key[1]}, context {key[2]}: "
                     f"{'–' if value is None else f'{value:.2f} dB'}")
    lines += ["", verdict(ranked)]
    text = "\n".join(lines)
    print(text)
    if args.quick:
        return
    write_record(Path(args.out), "preset64", {"date": str(dt.date.today()), "rows": rows,
                                               "common_bpp": common, "best": list(ranked[0][1]),
                                               "seconds": seconds})
    replace_section(Path(args.out), HEADING, text)


if __name__ == "__main__":
    run(main)
