"""The rate-utility plot, drawn with matplotlib: PNG for the docs, PDF and SVG for papers.

A log-scale bits-per-class axis, one series per method with error bars (the spread over
networks), IPC labels beside the vanilla points, and the full-training-set ceiling as a line
with its spread shaded. Figures are built on matplotlib's object API (no pyplot state), and the
PDF and SVG carry no creation date, so the same table gives the same files.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ddcodec.fileio import atomic_path

FORMATS = ("png", "pdf", "svg")


@dataclass
class Series:
    label: str
    x: list[float]
    y: list[float]
    yerr: list[float] = field(default_factory=list)
    color: str | None = None
    dashed: bool = False
    marker: str = "o"  # a matplotlib marker: o, s, ^, d, ...
    notes: list[str] = field(default_factory=list)  # a short tag beside each point ("IPC 10")


@dataclass(frozen=True)
class Ceiling:
    """The accuracy of the whole training set under (a stated version of) the protocol."""

    label: str
    accuracy: float
    std: float = 0.0


def rate_utility_plot(series: list[Series], stem: str | Path, *, title: str, x_label: str,
                      y_label: str, ceiling: Ceiling | None = None,
                      formats: tuple[str, ...] = FORMATS) -> list[Path]:
    """Draw the plot and write STEM.png/.pdf/.svg (atomically); return the paths."""
    import matplotlib

    matplotlib.rcParams["svg.hashsalt"] = "ddcodec"  # stable ids: the same SVG every time
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if not any(s.x for s in series):
        raise ValueError("nothing to plot")
    figure = Figure(figsize=(9.5, 5.6), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    for s in series:
        axes.errorbar(s.x, s.y, yerr=s.yerr or None, label=s.label, color=s.color,
                      marker=s.marker, markersize=6, linestyle="--" if s.dashed else "-",
                      linewidth=1.6, capsize=3, elinewidth=1)
        for x, y, note in zip(s.x, s.y, s.notes):
            if note:
                axes.annotate(note, (x, y), textcoords="offset points", xytext=(6, -12),
                              fontsize=8, color=s.color)
    if ceiling is not None:
        axes.axhline(ceiling.accuracy, color="black", linewidth=1.2, linestyle=":",
                     label=ceiling.label)
        if ceiling.std:
            axes.axhspan(ceiling.accuracy - ceiling.std, ceiling.accuracy + ceiling.std,
                         color="black", alpha=0.07, linewidth=0)
    axes.set_xscale("log")
    axes.margins(x=0.08)  # room for the last point's label
    axes.set_xlabel(x_label)
    axes.set_ylabel(y_label)
    # over the whole figure: the legend beside the axes leaves them narrower than a long title
    figure.suptitle(title, fontsize=11)
    axes.grid(True, which="major", alpha=0.35)
    axes.grid(True, which="minor", alpha=0.12)
    axes.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    stem = Path(stem)
    written = []
    for form in formats:
        path = stem.with_suffix(f".{form}")
        metadata = {"CreationDate": None} if form == "pdf" else (
            {"Date": None} if form == "svg" else None)
        with atomic_path(path) as tmp:
            figure.savefig(tmp, format=form, dpi=150, metadata=metadata)
        written.append(path)
    return written
