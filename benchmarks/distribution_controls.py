"""What a distributional set's samples add: controls on the curve's distributional files.

For every distributional DM point with hard labels that `benchmarks/curve.py` left in its cache,
the same file is trained on under the curve's protocol (300 epochs x 2 on the CIFAR-10 subset,
final epoch) three more ways besides the curve's own two (fresh samples, frozen samples):

* the means alone (`measure --samples 0`): what the samples add at all;
* four fresh samples per prior each epoch (`--samples 4`): whether more diversity per epoch
  helps;
* fresh samples with every spread halved (`--spread-scale 0.5`): whether the learnt spread is
  too wide;

and what the samples look like next to their means: the PSNR of epoch 0's samples against
their prior's mean image, the learnt spread per level, and the curve's teacher's accuracy on the
means and on samples (do samples still look like their class?). Then the other spread choice, the
same distillation otherwise, measured fresh and frozen: spreads on every level for the curve's
files (whose spreads are on the 3 coarsest levels, the default since curve version 6), or on
the 3 coarsest levels for older files. Each result is cached per file in
benchmarks/cache/distribution-controls/ (keyed by the file's bytes), so the script only measures
what is new. For the curve's distributional files with VQ soft labels, four fresh samples per
prior (whether more diversity per epoch still helps when the teacher's labels carry the gain),
beside the curve's latent + VQ, fresh and frozen points. Writes
docs/benchmarks/distribution_controls.json and the section "Distributional sets: what the
samples add" of docs/BENCHMARKS.md.

    python -m benchmarks.distribution_controls            # about 8 minutes per curve budget
    python -m benchmarks.distribution_controls --quick    # one short measure, prints only
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import platform
import sys
import time
from pathlib import Path

import torch

from benchmarks.harness import CACHE, ROOT, TEACHER, benchmark_parser, publish, run, spec_key
from ddcodec import __version__, api

HEADING = "## Distributional sets: what the samples add"
POINTS = CACHE / "curve" / "points"
STORE = CACHE / "distribution-controls"
# measure options per control: the means alone, more samples per epoch, samples half as far
CONTROLS = {"means alone": {"samples": 0}, "4 fresh samples": {"samples": 4},
            "spreads x 0.5": {"spread_scale": 0.5}}
COARSE_LEVELS = 3  # the default of --spread-levels
EVERY_LEVEL = 99  # at least any image's number of levels


def variant_spread(point: dict) -> tuple[int, str, str]:
    """The spread choice the curve's file did not make: (--spread-levels, file stem, words)."""
    if point["spec"]["version"] >= 6:  # the curve's default: the coarse levels
        return EVERY_LEVEL, "every-level", "every level"
    return COARSE_LEVELS, f"coarse{COARSE_LEVELS}", f"the {COARSE_LEVELS} coarsest levels only"


def curve_points(labels: str | None = None) -> list[dict]:
    """The curve's distributional DM points (fresh and frozen) by budget, with hard labels or
    with the soft-label rung `labels` (e.g. "vq")."""
    suffix = f"+{labels}" if labels else ""
    found = {}
    for path in sorted(POINTS.glob("distribution-dm*.json")):
        point = json.loads(path.read_text())
        if point["series"] not in (f"distribution-dm{suffix}", f"distribution-dm-frozen{suffix}"):
            continue
        frozen = "-frozen" in point["series"]
        version = point["spec"]["version"]
        kept = found.setdefault(point["budget_bpc"], {}).setdefault(version, {})
        kept["frozen" if frozen else "fresh"] = point
    # per budget, the newest version's points (older ones are kept until a newer one exists)
    newest = [(b, versions[max(versions)]) for b, versions in sorted(found.items())]
    return [{"budget": b, **v} for b, v in newest if "fresh" in v]


def sample_psnr(ddz: Path) -> float:
    """Mean PSNR (dB) of epoch 0's samples against their prior's mean image, 8-bit pixels."""
    decoded = api.decode(ddz, None, samples=1)
    images = decoded.images.float()
    means, samples = [], []
    for c in decoded.labels.unique().tolist():  # per class: its means, then their samples
        block = images[decoded.labels == c]
        half = block.shape[0] // 2
        means.append(block[:half])
        samples.append(block[half:])
    mse = ((torch.cat(means) - torch.cat(samples)) ** 2).flatten(1).mean(1).clamp_min(1e-6)
    return float((10 * torch.log10(255.0 ** 2 / mse)).mean())


def teacher_agreement(ddz: Path, samples: int = 8) -> dict | None:
    """The curve's teacher on a file's images: its accuracy (%) on the means (or fixed images)
    and on `samples` samples per prior of epoch 0, drawn with the file's spreads and with them
    halved: whether samples still look like their class to a network trained on real images.
    None without the teacher."""
    if not TEACHER.is_file():
        return None
    from ddcodec.labels.teacher import load_teacher

    teacher = load_teacher(TEACHER)
    decoded = api.decode(ddz, None)

    def accuracy(images: torch.Tensor, labels: torch.Tensor) -> float:
        predicted = teacher.probabilities(teacher.normalization.normalize(images), 1.0,
                                          torch.device("cpu")).argmax(1)
        return 100 * float((predicted == labels).float().mean())

    result = {"means": accuracy(decoded.images, decoded.labels)}
    if decoded.sampler is not None:  # each sample carries its prior's label
        labels = decoded.labels[decoded.sampler.prior_of_sample(samples)]
        for key, scale in (("samples", 1.0), ("samples_spread_x0.5", 0.5)):
            sampler = dataclasses.replace(decoded.sampler, spread_scale=scale)
            result[key] = accuracy(sampler.images(0, samples), labels)
    return result


def controls_for(point: dict, epochs: int, runs: int, sheets: Path, controls: dict = CONTROLS,
                 looks: bool = True, compute: bool = True) -> dict:
    """The controls of one curve file, cached by its bytes; controls added since a file was
    last measured are measured now (unless not `compute`). `looks`: also the sample sheet,
    the samples' PSNR and the teacher's accuracy on them."""
    ddz = POINTS / point["file"]
    digest = hashlib.sha256(ddz.read_bytes()).hexdigest()[:12]
    cached = STORE / f"{ddz.stem}-{digest}-e{epochs}r{runs}.json"
    result = json.loads(cached.read_text()) if cached.is_file() else {"file": ddz.name}
    if looks and "sample_psnr_db" not in result:
        result["sample_psnr_db"] = sample_psnr(ddz)
    if looks and "sheet" not in result:
        result["sheet"] = sample_sheet(ddz, f"{ddz.stem}-{round(point['bpc'])}bpc.png", sheets)
    if looks and "samples_spread_x0.5" not in (result.get("teacher") or {}):  # missing, older
        result["teacher"] = teacher_agreement(ddz)
    for name, options in controls.items():
        if name in result or not compute:
            continue
        print(f"{point['budget_bpc']:,} bits/class: {name}", file=sys.stderr, flush=True)
        report = api.measure(ddz, epochs=epochs, runs=runs, seed=0, device="cpu", **options)
        result[name] = {"accuracy_mean": report["accuracy_mean_percent"],
                        "accuracy_std": report["accuracy_std_percent"],
                        "images_per_epoch": report["protocol"]["images_per_epoch"],
                        "steps_per_epoch": report["protocol"]["steps_per_epoch"],
                        "seconds": report["seconds"]}
        STORE.mkdir(parents=True, exist_ok=True)
        cached.write_text(json.dumps(result, indent=1))  # each control as it lands
    if compute:
        STORE.mkdir(parents=True, exist_ok=True)
        cached.write_text(json.dumps(result, indent=1))
    return result


def sample_sheet(ddz: Path, name: str, sheets: Path) -> str:
    """SHEETS/NAME (grids/ beside the report): per class, the means then 2 samples of each
    prior (epoch 0); the link the report gives it."""
    sheets.mkdir(parents=True, exist_ok=True)
    out = sheets / name
    api.decode(ddz, out, format="grid", force=True, samples=2)
    return f"grids/{name}"


def spread_variant(point: dict, epochs: int, runs: int, sheets: Path,
                   compute: bool = True) -> dict | None:
    """The point's distillation with the other spread choice, fresh and frozen (None when it
    is not cached and `compute` is off)."""
    levels, stem, words = variant_spread(point)
    options = {**point["spec"]["distill"], "spread_levels": levels}
    key = spec_key([options, point["spec"]["protocol"], epochs, runs])
    prefix = "coarse" if levels == COARSE_LEVELS else stem
    cached = STORE / f"{prefix}-{point['budget_bpc']}-{key}.json"
    if cached.is_file():
        result = json.loads(cached.read_text())
        if "sheet" not in result:  # recorded before sheets were drawn
            result["sheet"] = sample_sheet(STORE / result["file"], f"distribution-dm-{stem}-"
                                           f"{round(result['bpc'])}bpc.png", sheets)
        result.update(spread_levels=levels, spreads_on=words)
        cached.write_text(json.dumps(result, indent=1))
        return result
    if not compute:
        return None
    STORE.mkdir(parents=True, exist_ok=True)
    set_path, ddz = STORE / f"{prefix}-{key}.pt", STORE / f"{prefix}-{key}.ddz"
    print(f"{point['budget_bpc']:,} bits/class: distilling with --spread-levels {levels}",
          file=sys.stderr, flush=True)
    started = time.perf_counter()
    distilled = api.distill(point["spec"]["protocol"]["data"], set_path, force=True,
                            device="cpu", **options)
    seconds = time.perf_counter() - started
    data, _ = api.encode(set_path, ddz, force=True)
    set_path.unlink()
    result = {"file": ddz.name, "bpc": 8 * len(data) / distilled.num_classes,
              "spread_levels": levels, "spreads_on": words, "distill_seconds": seconds,
              "sample_psnr_db": sample_psnr(ddz),
              "sigma_median_per_level": distilled.provenance.get("sigma_median_per_level")}
    result["sheet"] = sample_sheet(ddz, f"distribution-dm-{stem}-{round(result['bpc'])}bpc.png",
                                   sheets)
    for name, frozen in (("fresh", False), ("frozen", True)):
        report = api.measure(ddz, epochs=epochs, runs=runs, seed=0, device="cpu",
                             frozen_samples=frozen)
        result[name] = {"accuracy_mean": report["accuracy_mean_percent"],
                        "accuracy_std": report["accuracy_std_percent"]}
    cached.write_text(json.dumps(result, indent=1))
    return result


def latent_point(budget: float, series: str = "latent-dm") -> dict | None:
    for path in POINTS.glob(f"{series}-*.json"):
        point = json.loads(path.read_text())
        if point["series"] == series and point["budget_bpc"] == budget:
            return point
    return None


# with the curve's soft labels (one VQ-coded label per prior): does more diversity per epoch
# still help when the teacher's labels already carry the gain?
LABELLED_CONTROLS = {"4 fresh samples": {"samples": 4}}


def acc(p: dict | None) -> str:
    """One accuracy cell: mean ± std, or – where the control is not measured yet."""
    return f"{p['accuracy_mean']:.2f} ± {p['accuracy_std']:.2f}" if p else "–"


def labelled_lines(record: dict) -> list[str]:
    rows = record.get("labelled_rows") or []
    if not rows:
        return []

    lines = ["", "With the curve's VQ soft labels (one label per prior from the same teacher, "
                 "coded in the file), the same protocol:", "",
             "| budget | latent set + VQ | distributional + VQ, 1 fresh sample (the curve) | "
             "frozen samples | means + 4 fresh samples |", "|---:|---:|---:|---:|---:|"]
    for row in rows:
        lines.append(f"| {row['budget']:,} | {acc(row['latent'])} | {acc(row['fresh'])} | "
                     f"{acc(row['frozen'])} | {acc(row.get('4 fresh samples'))} |")
    return lines


def section(record: dict) -> str:
    lines = [HEADING, "",
             f"Measured {record['date']} with `python -m benchmarks.distribution_controls` "
             f"(ddcodec {record['version']}, {record['machine']}): the curve's distributional "
             "DM files (hard labels), each trained on by 2 fresh ConvNet-D3 for 300 epochs "
             "(final epoch) in six ways, beside the deterministic latent set at the same "
             "budget. σ × 0.5: fresh samples drawn with every spread halved (`measure "
             "--spread-scale 0.5`). Sample PSNR: epoch 0's samples against their prior's mean, "
             "8-bit. Teacher: the curve's teacher's accuracy on the latent set's images, on the "
             "means, and on 8 samples per prior (learnt σ, and σ × 0.5): whether samples still "
             "look like their class.",
             "", "| budget | latent set | means + 1 fresh sample (the curve) | frozen samples | "
             "means alone | means + 4 fresh samples | σ × 0.5 | sample PSNR (dB) | σ per level, "
             "fine → coarse | teacher % on latent / means / samples / samples at σ × 0.5 |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---|---|"]

    def agree(row) -> str:
        seen = [(row.get("latent_teacher") or {}).get("means"),
                *((row.get("teacher") or {}).get(k)
                  for k in ("means", "samples", "samples_spread_x0.5"))]
        return " / ".join("–" if v is None else f"{v:.0f}" for v in seen)

    for row in record["rows"]:
        sigma = ", ".join(f"{v:.2g}" for v in row["sigma_median_per_level"] or [])
        lines.append(f"| {row['budget']:,} | {acc(row['latent'])} | {acc(row['fresh'])} | "
                     f"{acc(row['frozen'])} | {acc(row.get('means alone'))} | "
                     f"{acc(row.get('4 fresh samples'))} | {acc(row.get('spreads x 0.5'))} | "
                     f"{row['sample_psnr_db']:.1f} | {sigma} | {agree(row)} |")
    lines += labelled_lines(record)
    lines += ["", "The other spread choice, otherwise the same distillation:", "",
              "| budget | spreads on | bits per class | fresh samples | frozen samples | "
              "sample PSNR (dB) | σ per level, fine → coarse |",
              "|---:|---|---:|---:|---:|---:|---|"]
    for row in record["rows"]:
        v = row.get("variant")
        if v:
            sigma = ", ".join(f"{x:.2g}" for x in v["sigma_median_per_level"] or [])
            lines.append(f"| {row['budget']:,} | {v['spreads_on']} | {v['bpc']:,.0f} | "
                         f"{acc(v['fresh'])} | {acc(v['frozen'])} | "
                         f"{v['sample_psnr_db']:.1f} | {sigma} |")
    lines += ["", "Per class, the means and then two samples of each prior (epoch 0): the "
                  "curve's file, then the other spread choice, at each budget.", ""]
    for row in record["rows"]:
        for what, sheet in (("the curve's file", row.get("sheet")),
                            ((row.get("variant") or {}).get("spreads_on"),
                             (row.get("variant") or {}).get("sheet"))):
            if sheet:
                lines.append(f"![{row['budget']:,} bits per class, {what}]({sheet})")
    return "\n".join(lines)


def main() -> None:
    parser = benchmark_parser(__doc__, ROOT)
    parser.add_argument("--no-variant", action="store_true",
                        help="Only the controls: no new distillation with the other spread "
                             "choice (cached ones are still shown).")
    parser.add_argument("--report-only", action="store_true",
                        help="Measure nothing: the report from what is cached.")
    args = parser.parse_args()
    compute = not args.report_only
    torch.set_num_threads(args.threads)
    epochs, runs = (2, 1) if args.quick else (300, 2)
    started = time.perf_counter()
    if args.quick:  # --quick writes nothing beside the report: its files go to bench_runs/
        global STORE
        STORE = ROOT / "bench_runs" / "distribution-controls-quick"
    sheets = STORE / "grids" if args.quick else Path(args.out).parent / "grids"
    rows = []
    for point in curve_points()[:1] if args.quick else curve_points():
        found = controls_for(point["fresh"], epochs, runs, sheets, compute=compute)
        latent = latent_point(point["budget"])
        rows.append({"budget": point["budget"], "latent": latent,
                     "latent_teacher": latent and teacher_agreement(POINTS / latent["file"]),
                     "fresh": point["fresh"], "frozen": point.get("frozen"),
                     "sigma_median_per_level": point["fresh"].get("sigma_median_per_level"),
                     **found, "variant": spread_variant(point["fresh"], epochs, runs, sheets,
                                                        compute=compute and not
                                                        args.no_variant)})
    labelled = []
    # the largest budget first: the one whose controls say most, should a run be cut short
    for point in [] if args.quick else sorted(curve_points("vq"), key=lambda p: -p["budget"]):
        found = controls_for(point["fresh"], epochs, runs, sheets, LABELLED_CONTROLS, looks=False,
                             compute=compute)
        labelled.append({"budget": point["budget"], "fresh": point["fresh"],
                         "frozen": point.get("frozen"),
                         "latent": latent_point(point["budget"], "latent-dm+vq"), **found})
    labelled.sort(key=lambda row: row["budget"])
    if not rows:
        sys.exit("distribution_controls: no distributional points in the curve's cache; run "
                 "benchmarks/curve.py first")
    record = {"date": str(dt.date.today()), "version": __version__,
              "machine": f"{platform.machine()}, {args.threads} torch threads",
              "seconds_this_run": time.perf_counter() - started, "rows": rows,
              "labelled_rows": labelled}
    publish(args, "distribution_controls", HEADING, record, section(record))


if __name__ == "__main__":
    run(main)
