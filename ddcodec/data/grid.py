"""A contact sheet of a decoded set: one labelled row per class, so a person can see at a glance
what the bits bought (`ddcodec decode --format grid`, and the report's image grids)."""

from __future__ import annotations

import torch
from PIL import Image, ImageDraw, ImageFont

from ddcodec.errors import DDCodecError

GAP = 2  # pixels between tiles
LABEL_WIDTH = 110
TITLE_HEIGHT = 28


def font(size: int):
    """Pillow's default font at `size` (the bitmap font before Pillow 10.1)."""
    try:
        return ImageFont.load_default(size=size)
    except TypeError:
        return ImageFont.load_default()


def to_pil(image: torch.Tensor) -> Image.Image:
    """One uint8 (C, H, W) image as a Pillow image: L, RGB or RGBA by its channels."""
    array = image.permute(1, 2, 0).numpy()
    mode = {1: "L", 3: "RGB", 4: "RGBA"}.get(array.shape[2])
    if mode is None:
        raise DDCodecError(f"PNG output needs 1, 3 or 4 channels, not {array.shape[2]}")
    return Image.fromarray(array[:, :, 0] if mode == "L" else array, mode)


def class_grid(images: torch.Tensor, labels: torch.Tensor, class_names: list[str], *,
               per_class: int = 10, scale: int = 2, title: str | None = None) -> Image.Image:
    """uint8 images (N, C, H, W) -> an RGB sheet: row c shows the first `per_class` images of
    class c (in set order), each enlarged `scale` times without smoothing; empty tiles stay
    white so that a class with fewer images is visibly short."""
    if images.dtype != torch.uint8 or images.dim() != 4:
        raise DDCodecError("a grid needs uint8 images shaped (N, C, H, W)")
    if per_class < 1 or scale < 1:
        raise DDCodecError("a grid needs per_class and scale of at least 1")
    h, w = images.shape[-2] * scale, images.shape[-1] * scale
    columns = max(1, min(per_class, max((int((labels == c).sum())
                                         for c in range(len(class_names))), default=1)))
    top = TITLE_HEIGHT if title else GAP
    face = font(14)
    width = LABEL_WIDTH + columns * (w + GAP) + GAP
    if title:  # a narrow sheet widens to show its whole title
        probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
        width = max(width, int(probe.textlength(title, font=face)) + 2 * GAP + 8)
    sheet = Image.new("RGB", (width, top + len(class_names) * (h + GAP) + GAP), "white")
    draw = ImageDraw.Draw(sheet)
    if title:
        draw.text((GAP + 4, 6), title, fill="black", font=face)
    for row, name in enumerate(class_names):
        y = top + row * (h + GAP)
        draw.text((4, y + h // 2 - 8), name[:14], fill="black", font=face)
        chosen = torch.nonzero(labels == row).flatten()[:columns]
        for col, index in enumerate(chosen.tolist()):
            tile = to_pil(images[index]).convert("RGB").resize((w, h), Image.NEAREST)
            sheet.paste(tile, (LABEL_WIDTH + col * (w + GAP) + GAP, y))
    return sheet
