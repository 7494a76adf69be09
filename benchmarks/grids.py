"""Decoded-image grids for the report: what the bits of each rate-utility point look like.

Decodes every latent and vanilla-pixel .ddz that `benchmarks/curve.py` left in its point cache
(only the points its table reports) and writes one contact sheet per file (a labelled row of up
to 10 images per class, 2x enlarged) to docs/grids/, next to a sheet of real training images,
then the section "Decoded images" of docs/BENCHMARKS.md. Seconds on 2 cores; run it after
curve.py.

    python -m benchmarks.grids
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch

from benchmarks.harness import CACHE, benchmark_parser, replace_section, run
from ddcodec import api
from ddcodec.reports.curve import LABELS
from ddcodec.data.datasets import load_dataset
from ddcodec.distillation.random_subset import sample_class_indices
from ddcodec.data.grid import class_grid

PER_CLASS = 10


SAMPLES = 3  # a distributional sheet: each prior's mean and this many samples (epoch 0)


def reported_files(table: dict) -> list[dict]:
    """(series, bits, accuracy, file) of each latent, distributional (fresh samples; the frozen
    control shares its file) and vanilla 8-bit point, by series then bits; the float32 points
    share their 8-bit twin's file."""
    rows = [p for p in table["points"]
            if p.get("file") and (p["series"].startswith(("latent-", "distribution-"))
                                  or p["series"] == "pixels-8bit")
            and "-frozen" not in p["series"]]
    return sorted(rows, key=lambda p: (p["series"], p["bpc"]))


def sheet_images(path: Path) -> tuple[torch.Tensor, torch.Tensor, list[str], int]:
    """A file's images for its sheet: the decoded set, or for a distributional file each
    prior's mean followed by its first SAMPLES samples (so a row shows priors side by side)."""
    decoded = api.decode(path)
    names, n = list(decoded.header.class_names), decoded.header.num_images
    if decoded.sampler is None:
        return decoded.images, decoded.labels, names, n
    drawn = decoded.sampler.images(0, SAMPLES)
    prior = decoded.sampler.prior_of_sample(SAMPLES)
    order = [i for p in range(n) for i in [p] + [n + j for j in
                                                    (prior == p).nonzero().flatten().tolist()]]
    images = torch.cat([decoded.images, drawn])[order]
    return images, decoded.labels[[i if i < n else int(prior[i - n]) for i in order]], names, n


def real_sheet(data: str, seed: int):
    dataset = load_dataset(data)
    generator = torch.Generator().manual_seed(seed)
    chosen = torch.cat([sample_class_indices(dataset, c, PER_CLASS, generator)
                        for c in range(dataset.num_classes)])
    return class_grid(dataset.x_train[chosen], dataset.y_train[chosen],
                      list(dataset.class_names),
                      title=f"real training images ({data}), {PER_CLASS} random per class")


def main() -> None:
    parser = benchmark_parser(__doc__)
    parser.add_argument("--work", default=str(CACHE / "curve"))
    args = parser.parse_args()
    started = time.perf_counter()
    work, out = Path(args.work), Path(args.out)
    table_path = work / "curve.json"
    if not table_path.is_file():
        sys.exit(f"grids: {table_path} not found; run benchmarks/curve.py first")
    table = json.loads(table_path.read_text())
    folder = out.parent / "grids"
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.png"):
        old.unlink()
    real_sheet(table["protocol"]["data"], 0).save(folder / "real.png")
    entries = []
    for p in reported_files(table):
        images, labels, names, n = sheet_images(work / "points" / p["file"])
        name = f"{p['series']}-{p['bpc']:.0f}bpc.png"
        label = LABELS.get(p["series"], p["series"])
        what = (f"{n // len(names)} priors/class, each mean + {SAMPLES} samples"
                if p["series"].startswith("distribution-") else f"{n // len(names)} images/class")
        title = (f"{label}: {p['bpc']:,.0f} bits/class, {what}, {p['accuracy_mean']:.1f} % "
                 "accuracy")
        class_grid(images, labels, names, per_class=PER_CLASS if len(images) == n
                   else 2 * (1 + SAMPLES), title=title).save(folder / name)
        entries.append((label, p, name))
    seconds = time.perf_counter() - started
    lines = ["## Decoded images (CIFAR-10 subset)", "",
             f"Made {time.strftime('%Y-%m-%d')} by `python -m benchmarks.grids` from the .ddz "
             f"files of the rate-utility curve above ({seconds:.0f} s): each sheet is the "
             "decoder's output, one row per class, up to 10 images per class, 2x enlarged; a "
             f"distributional set's row shows two priors, each its mean then {SAMPLES} samples "
             "(those measure trains on at epoch 0). The "
             "same sheet for any .ddz: `ddcodec decode FILE --format grid` (`--samples S` for "
             "a distributional file's samples).", "",
             "Real training images, for comparison:", "", "![real](grids/real.png)", ""]
    for label, p, name in entries:
        lines += [f"{label} at {p['bpc']:,.0f} bits per class ({p['accuracy_mean']:.1f} %):", "",
                  f"![{label} {p['bpc']:,.0f}](grids/{name})", ""]
    replace_section(out, "## Decoded images", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    run(main)
