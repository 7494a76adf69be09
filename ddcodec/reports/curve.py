"""The rate-utility curve: accuracy against bits per class, for our latent sets and baselines.

Every point is a real file whose bytes are counted, trained on under one protocol:

* `latent-<loss>`: `distill --param latent --target-bpc B`, encoded to .ddz, measured.
* `distribution-<loss>` (D3): `distill --param distribution --target-bpc B`, measured with fresh
  samples every epoch, and `distribution-<loss>-frozen`: the same file with epoch 0's samples.
* `pixels-float32` / `pixels-8bit`: vanilla pixel sets (pixel DM) at IPC 1/10/50, counted as
  float32 (the papers' convention: images only) and as an 8-bit .ddz (`encode --pixels 8bit`:
  rounded, declared lossy). Both are measured on the decoded .ddz, i.e. the 8-bit rounding of
  the float set (<= 1/510 per pixel).
* `jpeg-qQ` / `webp-qQ`: random real images packed per class into one mosaic file, as many per
  class as fit in B (`ddcodec.reports.packed`); `jpeg` / `webp` is the best quality at each budget.

Points are made and cached by `ddcodec.reports.points` (OUT/points/*.json, under a key of
everything that determines them), so re-running with the same arguments reuses finished points
and adding budgets or losses to the same folder extends the table. The table
(`ddcodec.reports.table`: JSON and CSV) and the plot are rebuilt from every cached point
measured under the requested protocol.
"""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path
from typing import Callable

from ddcodec.data.datasets import load_dataset
from ddcodec.devices import resolve_device
from ddcodec.errors import DDCodecError
from ddcodec.fileio import atomic_path
from ddcodec.labels.rungs import rung_names, spec_of
from ddcodec.reports.curve_config import CurveConfig
from ddcodec.reports.plot import Ceiling, Series, rate_utility_plot
from ddcodec.reports.points import (Event, PointStore, Reporter, full_point, latent_point,
                                    packed_point, pixel_point)
from ddcodec.reports.table import build_table, series_of


def run_curve(config: CurveConfig, out: Path, device: str = "auto",
              on_event: Event | None = None, measuring: Callable | None = None) -> dict:
    """Compute the curve's missing points into `out`. `on_event` gets a line per part;
    `measuring(stage, runs, epochs)` gives each measurement's on_epoch callback (a display's
    `measuring`), so measuring stages count epochs and show an ETA."""
    say = Reporter(on_event or (lambda message: None), measuring)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise DDCodecError(f"{out} exists and is not a folder")
    store = PointStore(out)
    dev = resolve_device(device)
    dataset = load_dataset(config.data)
    started = time.perf_counter()
    rungs = config.label_rungs if config.teacher else ()
    for budget in sorted(config.budgets):
        for loss in config.losses:
            latent_point(store, config, loss, budget, device, say)
            # the distributional points next: their comparison with the plain latent set is
            # the D3 question, so an interrupted run has answered it first
            if loss in config.distribution_losses:
                for rung in (None, *rungs[-1:]):
                    latent_point(store, config, loss, budget, device, say, rung,
                                  param="distribution")
            for rung in rungs:
                latent_point(store, config, loss, budget, device, say, rung)
        if rungs and config.baselines:
            codec, quality = config.labelled_random
            packed_point(store, config, dataset, codec, quality, budget, dev, say, rungs[-1])
    if config.baselines:
        for budget in sorted(config.budgets):
            for codec in config.codecs:
                for quality in config.qualities:
                    packed_point(store, config, dataset, codec, quality, budget, dev, say)
        for ipc in config.pixel_ipcs:
            pixel_point(store, config, ipc, device, say)
    if config.ceiling_epochs:
        full_point(store, config, dataset, dev, say)
    table = build_table(store, config)
    table["seconds_this_run"] = time.perf_counter() - started
    write_outputs(table, out)
    return table


LABELS = {"latent-dm": "latent DM (ours, .ddz)", "latent-gm": "latent GM (ours, .ddz)",
          "latent-tm": "latent TM (ours, .ddz)",
          "pixels-float32": "vanilla pixels (DM), float32 (the papers' count)",
          "pixels-8bit": "vanilla pixels (DM), rounded to an 8-bit .ddz",
          "jpeg": "random real, packed JPEG (best quality)",
          "webp": "random real, packed WebP (best quality)",
          "distribution-dm": "distributional DM, fresh samples each epoch (ours, .ddz)",
          "distribution-dm-frozen": "the same distributional files, samples frozen at epoch 0"}
STYLE = {"latent-dm": ("#1f77b4", False, "o"), "latent-gm": ("#2ca02c", False, "s"),
         "latent-tm": ("#9467bd", False, "d"), "pixels-float32": ("#d62728", True, "^"),
         "pixels-8bit": ("#ff7f0e", True, "^"), "jpeg": ("#7f7f7f", True, "s"),
         "webp": ("#8c564b", True, "d"), "distribution-dm": ("#393b79", False, "v"),
         "distribution-dm-frozen": ("#9c9ede", False, "v")}
RUNG_PALETTE = (("#17becf", "P"), ("#e377c2", "*"), ("#bcbd22", "X"), ("#98df8a", "h"),
                ("#c49c94", "p"), ("#f7b6d2", "8"))  # by the registry's order, then again


def _rung_legend(rung: str) -> tuple[str, tuple[str, str]] | None:
    """A registered rung's legend name and (colour, marker); None for any other text."""
    names = rung_names()
    if rung not in names:
        return None
    return (f"{spec_of(rung).display} soft labels",
            RUNG_PALETTE[names.index(rung) % len(RUNG_PALETTE)])


def _legend(name: str) -> tuple[str, tuple[str, bool, str]] | None:
    """Legend text and style of a series; labelled series ("latent-dm+vq", "webp-q25+vq")
    are named from their base series and rung."""
    if name in LABELS:
        return LABELS[name], STYLE[name]
    base, _, rung = name.partition("+")
    legend = _rung_legend(rung)
    if legend is None:
        return None
    rung_text, (color, marker) = legend
    if base in LABELS and base.startswith("distribution-"):
        text = LABELS[base].replace(" (ours, .ddz)", "")
        return f"{text} + {rung_text}", (STYLE[base][0], False, marker)
    if base.startswith("latent-"):
        return f"latent {base[7:].upper()} + {rung_text} (ours, .ddz)", (color, False,
                                                                               marker)
    codec, _, quality = base.partition("-q")
    return (f"random real, packed {codec.upper()} q{quality} + the same teacher's "
            f"{rung_text}", (color, True, marker))


def write_outputs(table: dict, out: Path) -> None:
    with atomic_path(out / "curve.json") as tmp:
        tmp.write_text(json.dumps(table, indent=1) + "\n")
    columns = ["series", "bpc", "accuracy_mean", "accuracy_std", "images_per_class", "ipc",
               "quality", "budget_bpc", "lmbda"]
    with atomic_path(out / "curve.csv") as tmp:
        with open(tmp, "w", newline="") as handle:
            writer = csv.DictWriter(handle, columns, extrasaction="ignore")
            writer.writeheader()
            for p in table["points"]:
                writer.writerow(p)
    series = []
    names = list(LABELS) + sorted({p["series"] for p in table["points"]} - set(LABELS))
    for name in names:
        pts, legend = series_of(table["points"], name), _legend(name)
        if pts and legend:
            label, (color, dashed, marker) = legend
            notes = [f"IPC {p['ipc']}" if p.get("ipc") else "" for p in pts]
            series.append(Series(label, [p["bpc"] for p in pts],
                                 [p["accuracy_mean"] for p in pts],
                                 [p["accuracy_std"] for p in pts], color, dashed, marker,
                                 notes=notes))
    if series:
        protocol, full = table["protocol"], table.get("ceiling")
        ceiling = None if not full else Ceiling(
            f"whole training split ({full['num_images']:,} images, {full['epochs']} epochs): "
            f"{full['accuracy_mean']:.1f} %", full["accuracy_mean"], full["accuracy_std"])
        rate_utility_plot(series, out / "curve",
                          title=f"Rate-utility on {protocol['data']} ({protocol['epochs']} "
                                f"epochs x {protocol['runs']} ConvNet-D3, {table['date']})",
                          x_label="bits per class (whole file; log scale)",
                          y_label="test accuracy (%)", ceiling=ceiling)
