"""How the command line shows results on a terminal: tables and one-line summaries drawn
from the reports the API returns (the reports themselves are what --json prints)."""

from __future__ import annotations


def pixel_text(pixels: dict) -> str:
    text = pixels["coding"]
    if pixels.get("lossless") is False:
        text += (f": max error {pixels['max_error']:.4g}, mean {pixels['mean_error']:.4g} "
                 f"(normalised units), PSNR {pixels['psnr_db']:.2f} dB")
    return text


def info_table(report: dict, source: str, summary: str) -> None:
    """`ddcodec info`: bytes and estimated bits per section, then the file's summary."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"ddcodec info {source}")
    table.add_column("part")
    table.add_column("bytes", justify="right")
    table.add_column("estimated bits", justify="right")
    parts = report["estimated_bits_parts"]
    for name, size in report["sections"].items():
        table.add_row(name, f"{size:,}", f"{parts.get(name, 8 * size):,.0f}")
    table.add_row("framing", "", f"{parts.get('framing', 0):,.0f}")
    table.add_row("total", f"{report['file_bytes']:,}", f"{report['estimated_bits']:,.0f}",
                  style="bold")
    console = Console()
    console.print(table)
    console.print(f"{summary} ({8 * report['file_bytes'] / report['estimated_bits'] - 1:+.2%} "
                  f"vs estimate); as float32 pixels: "
                  f"{report['float32_bits_per_class']:,.0f} bits/class")
    spread = report.get("distribution")
    if spread:
        sigmas = ", ".join(f"{v:.2g}" for v in spread["sigma_median_per_level"])
        console.print(f"distribution: {spread['priors']} priors, each mean + "
                      f"{spread['samples_per_prior']} fresh sample(s) per epoch "
                      f"({spread['images_per_epoch']} images); median sigma per level "
                      f"(latent steps, coarse last): {sigmas}; scales "
                      f"{spread['scales_bits'] / report['num_classes']:,.0f} bits/class")
    meta = report.get("meta", {})
    if "zca_eps" in meta:
        console.print(f"images: ZCA-whitened (eps {meta['zca_eps']}, the transform rebuilt from "
                      f"{meta.get('data', '?')}'s training images by measure and "
                      "decode --unwhiten)")
    labels = report["labels"]
    if labels["kind"] != "hard":
        k = report["num_classes"]
        share = labels["bits"] / (8 * report["file_bytes"])
        console.print(f"labels: {labels['kind']}, {labels['codec']}, {labels['bits'] / k:,.0f} "
                      f"bits/class, {share:.1%} of the file (as float16: "
                      f"{labels['float16_bits'] / k:,.0f}), loss {labels['loss']} at T "
                      f"{labels['temperature']:g}" + _hard_weight(labels))
        if "views_bits" in labels:
            views = labels["views_bits"] / (8 * report["file_bytes"])
            console.print(f"fkd views: {labels['views_bits'] / k:,.0f} bits/class, {views:.1%} "
                          "of the file")


def _hard_weight(labels: dict) -> str:
    weight = labels.get("hard_weight")
    return f", hard weight {weight:g}" if weight else ""


def measure_table(report: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"ddcodec measure {report['file']}", show_header=False)
    table.add_column(style="bold")
    table.add_column()
    acc = f"{100 * report['accuracy_mean']:.2f} ± {100 * report['accuracy_std']:.2f} %"
    rows = [
        ("accuracy", acc),
        ("runs", ", ".join(f"{100 * a:.2f}" for a in report["accuracies"])),
        ("images", f"{report['num_images']} ({report['num_classes']} classes, "
                   f"{report['images_per_class']:g} per class)"),
        ("file", f"{report['file_bytes']:,} bytes"),
        ("bits per class", f"{report['bpc']:,.0f}"),
        ("protocol", f"{report['arch']}, {report['epochs']} epochs, lr {report['protocol']['lr']:g}"
                     f", {'DSA' if report['protocol']['dsa'] else 'no augmentation'}, "
                     f"final-epoch accuracy on {report['num_test']} test images"),
        ("labels", report["labels"]["kind"] + (
            f", {report['labels']['codec']}, loss {report['labels']['loss']} at T "
            f"{report['labels']['temperature']:g}" + _hard_weight(report["labels"])
            if "codec" in report["labels"] else "")),
        ("time", f"{report['seconds']:.1f} s on {report['device']}"),
    ]
    spread = report.get("distribution")
    if spread:
        protocol = report["protocol"]
        rows.insert(3, ("distribution", (
            f"{spread['priors']} priors: the means alone" if not spread["samples_per_prior"]
            else f"{spread['priors']} priors: means + {spread['samples_per_prior']} sample(s) "
                 f"per prior, {spread['resampled']}") + (
            f", every sigma x {spread['spread_scale']:g}" if spread["spread_scale"] != 1
            else "") + (
            f"; {protocol['images_per_epoch']} images, {protocol['steps_per_epoch']} SGD "
            "step(s) per epoch")))
    controls = report.get("label_controls")
    if controls:
        hard = controls["same_images_hard_labels"]
        rows.append(("control: hard labels", f"{100 * hard['accuracy_mean']:.2f} ± "
                                             f"{100 * hard['accuracy_std']:.2f} % (the same "
                                             "images)"))
        rnd = controls["random_real_same_teacher"]
        rows.append(("control: random real", rnd.get("note") or (
            f"{100 * rnd['accuracy_mean']:.2f} ± {100 * rnd['accuracy_std']:.2f} % "
            f"({rnd['images_per_class']} per class, the same teacher's labels, "
            f"{rnd['bpc']:,.0f} bits/class)")))
    if "ranking" in report:
        base, rank = report["baselines"], report["ranking"]
        for name, label in (("random", "random real subset"), ("full", "whole training split")):
            part = base[name]
            rows.append((label, f"{100 * part['accuracy_mean']:.2f} ± "
                                f"{100 * part['accuracy_std']:.2f} % ({part['num_images']:,} "
                                "images, same protocol and seeds)"))
        rows.append(("DD-Ranking", f"HLR {rank['hlr_percent']:.2f} points (lower is better), "
                                   f"IOR {rank['ior_percent']:+.2f} points, LRS "
                                   f"{rank['lrs_percent']:.2f} % (lambda {rank['lrs_lambda']:g})"))
    for key, value in rows:
        table.add_row(key, value)
    Console().print(table)


def curve_table(table: dict, output: str, quiet: bool) -> None:
    if quiet:
        return
    from rich.console import Console
    from rich.table import Table

    grid = Table(title=f"rate-utility ({table['protocol']['epochs']} epochs x "
                       f"{table['protocol']['runs']} networks)")
    for column in ("series", "bits/class", "accuracy %", "images/class"):
        grid.add_column(column, justify="left" if column == "series" else "right")
    for p in table["points"]:
        if "-q" in p["series"] and "+" not in p["series"]:  # their best is the jpeg/webp row
            continue
        grid.add_row(p["series"], f"{p['bpc']:,.0f}",
                     f"{p['accuracy_mean']:.2f} ± {p['accuracy_std']:.2f}",
                     f"{p.get('images_per_class') or p.get('ipc') or ''}")
    console = Console(stderr=True)
    console.print(grid)
    for r in table["ratios"]:
        if r["ratio"]:
            honest = (f", {r['ratio_8bit']:.0f}x fewer than its 8-bit .ddz"
                      if r.get("ratio_8bit") else "")
            console.print(f"{r['series']} reaches {r['reference']}'s "
                          f"{r['reference_accuracy']:.1f} % "
                          f"with {r['ratio']:.0f}x fewer bits than its float32 count{honest} "
                          f"({r['latent_bpc']:,.0f} vs {r['reference_bpc']:,.0f} bits/class)")
    console.print(f"wrote {output}/curve.json, curve.csv, curve.png, curve.pdf, curve.svg")
