"""Drawing referents onto images (demo, reports)."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from .structures import RefTargets

PALETTE = [(255, 64, 64), (64, 200, 255), (255, 200, 0), (120, 255, 120), (255, 120, 255)]


def draw_refs(
    image: Image.Image,
    refs: RefTargets,
    title: str | None = None,
    scale: int = 4,
    gt: RefTargets | None = None,
) -> Image.Image:
    """``image`` upscaled by ``scale`` with predicted referents (coloured) and
    optional ground truth (green dashed outline), masks blended, points as dots."""
    img = image.convert("RGB").resize((image.width * scale, image.height * scale), Image.NEAREST)
    arr = np.asarray(img).astype(np.float32)
    if "masks" in refs:
        for i, m in enumerate(refs.masks.numpy()):
            big = np.kron(m, np.ones((scale, scale), dtype=bool))
            arr[big] = 0.5 * arr[big] + 0.5 * np.array(PALETTE[i % len(PALETTE)])
    img = Image.fromarray(arr.astype(np.uint8))
    draw = ImageDraw.Draw(img)
    if gt is not None:
        for box in gt.boxes.tolist():
            draw.rectangle([v * scale for v in box], outline=(0, 255, 0), width=1)
    for i, box in enumerate(refs.boxes.tolist()):
        colour = PALETTE[i % len(PALETTE)]
        draw.rectangle([v * scale for v in box], outline=colour, width=2)
        label = refs.phrases[i] if i < len(refs.phrases) else ""
        if label:
            draw.text((box[0] * scale + 2, box[1] * scale + 2), label, fill=colour)
    if "points" in refs:
        for i, pts in enumerate(refs.points):
            for x, y in pts.tolist():
                draw.ellipse(
                    [x * scale - 3, y * scale - 3, x * scale + 3, y * scale + 3],
                    fill=PALETTE[i % len(PALETTE)],
                )
    if title:
        canvas = Image.new("RGB", (img.width, img.height + 14), (0, 0, 0))
        canvas.paste(img, (0, 14))
        ImageDraw.Draw(canvas).text((2, 1), title, fill=(255, 255, 255))
        img = canvas
    return img
