"""Line plots with a logarithmic x axis, drawn with Pillow (no plotting library needed).

Enough for a rate-utility curve that people can read: titled, labelled axes with units, decade
ticks with minor ticks, grid, error bars, markers, and a legend.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from PIL import Image, ImageDraw, ImageFont

PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2",
           "#7f7f7f", "#17becf", "#bcbd22"]


@dataclass
class Series:
    label: str
    x: list[float]
    y: list[float]
    yerr: list[float] = field(default_factory=list)
    color: str | None = None
    dashed: bool = False
    marker: str = "o"  # o, s (square), ^ (triangle), d (diamond)
    connect: bool = True
    notes: list[str] = field(default_factory=list)  # a short tag drawn beside each point


def font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: the bitmap font
        return ImageFont.load_default()


def _marker(draw: ImageDraw.ImageDraw, x: float, y: float, kind: str, color: str, r: int = 5):
    if kind == "s":
        draw.rectangle([x - r, y - r, x + r, y + r], fill=color)
    elif kind == "^":
        draw.polygon([(x, y - r - 1), (x - r, y + r), (x + r, y + r)], fill=color)
    elif kind == "d":
        draw.polygon([(x, y - r - 1), (x + r, y), (x, y + r + 1), (x - r, y)], fill=color)
    else:
        draw.ellipse([x - r, y - r, x + r, y + r], fill=color)


def _dashed(draw, points, color, width=2, dash=8):
    for (x0, y0), (x1, y1) in zip(points, points[1:]):
        length = math.hypot(x1 - x0, y1 - y0)
        steps = max(1, int(length // dash))
        for i in range(0, steps, 2):
            a, b = i / steps, min(1.0, (i + 1) / steps)
            draw.line([(x0 + (x1 - x0) * a, y0 + (y1 - y0) * a),
                       (x0 + (x1 - x0) * b, y0 + (y1 - y0) * b)], fill=color, width=width)


def log_x_plot(series: list[Series], path, *, title: str, x_label: str, y_label: str,
               y_range: tuple[float, float] | None = None, size=(1200, 760)) -> None:
    width, height = size
    left, right, top, bottom = 100, 330, 70, 90
    xs = [x for s in series for x in s.x if x > 0]
    ys = [y + e for s in series for y, e in zip(s.y, s.yerr or [0] * len(s.y))]
    ys += [y - e for s in series for y, e in zip(s.y, s.yerr or [0] * len(s.y))]
    if not xs:
        raise ValueError("nothing to plot")
    lo_dec = math.floor(math.log10(min(xs)))
    hi_dec = math.ceil(math.log10(max(xs)))
    if hi_dec == lo_dec:
        hi_dec += 1
    if y_range is None:
        step = 10
        y_range = (max(0.0, math.floor(min(ys) / step) * step),
                   min(100.0, math.ceil(max(ys) / step) * step))
        if y_range[0] == y_range[1]:
            y_range = (max(0.0, y_range[0] - step), min(100.0, y_range[0] + step))
    y0, y1 = y_range
    plot_w, plot_h = width - left - right, height - top - bottom

    def px(x):
        return left + (math.log10(x) - lo_dec) / (hi_dec - lo_dec) * plot_w

    def py(y):
        return top + (1 - (y - y0) / (y1 - y0)) * plot_h

    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    small, normal, large = font(15), font(18), font(22)
    # grid and ticks
    for decade in range(lo_dec, hi_dec + 1):
        x = px(10 ** decade)
        draw.line([(x, top), (x, top + plot_h)], fill="#d0d0d0", width=1)
        label = f"{10 ** decade:,}" if decade < 9 else f"1e{decade}"  # 100,000,000 still fits
        tw = draw.textlength(label, font=small)
        draw.text((x - tw / 2, top + plot_h + 8), label, fill="black", font=small)
        if decade < hi_dec:
            for m in range(2, 10):
                xm = px(m * 10 ** decade)
                draw.line([(xm, top), (xm, top + plot_h)], fill="#f0f0f0", width=1)
                draw.line([(xm, top + plot_h), (xm, top + plot_h + 4)], fill="black", width=1)
    span = y1 - y0
    ystep = 5 if span <= 40 else 10
    y = math.ceil(y0 / ystep) * ystep
    while y <= y1 + 1e-9:
        yy = py(y)
        draw.line([(left, yy), (left + plot_w, yy)], fill="#d0d0d0", width=1)
        label = f"{y:g}"
        tw = draw.textlength(label, font=small)
        draw.text((left - tw - 8, yy - 9), label, fill="black", font=small)
        y += ystep
    draw.rectangle([left, top, left + plot_w, top + plot_h], outline="black", width=2)
    # titles
    tw = draw.textlength(title, font=large)
    draw.text((left + (plot_w - tw) / 2, 20), title, fill="black", font=large)
    tw = draw.textlength(x_label, font=normal)
    draw.text((left + (plot_w - tw) / 2, height - 45), x_label, fill="black", font=normal)
    label_image = Image.new("RGB", (int(draw.textlength(y_label, font=normal)) + 4, 26), "white")
    ImageDraw.Draw(label_image).text((2, 2), y_label, fill="black", font=normal)
    rotated = label_image.rotate(90, expand=True)
    image.paste(rotated, (20, int(top + (plot_h - rotated.height) / 2)))
    # data
    legend = []
    for i, s in enumerate(series):
        color = s.color or PALETTE[i % len(PALETTE)]
        notes = s.notes or [""] * len(s.y)
        kept = [(x, y, e, n) for x, y, e, n in zip(s.x, s.y, s.yerr or [0.0] * len(s.y), notes)
                if x > 0]
        points = [(px(x), py(y)) for x, y, _, _ in kept]
        if s.connect and len(points) > 1:
            if s.dashed:
                _dashed(draw, points, color)
            else:
                draw.line(points, fill=color, width=3)
        for (x, y), (_, value, err, note) in zip(points, kept):
            if err > 0:
                hi, lo = py(value + err), py(value - err)
                draw.line([(x, hi), (x, lo)], fill=color, width=2)
                draw.line([(x - 5, hi), (x + 5, hi)], fill=color, width=2)
                draw.line([(x - 5, lo), (x + 5, lo)], fill=color, width=2)
            _marker(draw, x, y, s.marker, color)
            if note:
                draw.text((x + 8, y + 6), note, fill=color, font=small)
        legend.append((s, color))
    # legend, right of the plot
    lx, ly = left + plot_w + 20, top + 10
    for s, color in legend:
        if s.connect:
            if s.dashed:
                _dashed(draw, [(lx, ly + 10), (lx + 36, ly + 10)], color)
            else:
                draw.line([(lx, ly + 10), (lx + 36, ly + 10)], fill=color, width=3)
        _marker(draw, lx + 18, ly + 10, s.marker, color)
        words, line = s.label.split(), ""
        for word in words:  # wrap long labels
            if draw.textlength(f"{line} {word}".strip(), font=small) > right - 70 and line:
                draw.text((lx + 46, ly), line, fill="black", font=small)
                ly += 19
                line = word
            else:
                line = f"{line} {word}".strip()
        draw.text((lx + 46, ly), line, fill="black", font=small)
        ly += 30
    image.save(path)
