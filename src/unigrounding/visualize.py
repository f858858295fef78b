"""Drawing referents onto images (demo, reports).

The drawing is sized to the image (:func:`output_size`): small images are
upscaled by a whole factor, so every source pixel becomes a crisp block and a
64 px ShapesRef image stays legible; large photos are downscaled, so a 12 MP
phone photo gives a 2048 px PNG, not a gigapixel one. Line widths, point radii
and text follow the output size.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFont
from torchvision.transforms.functional import pil_to_tensor, to_pil_image
from torchvision.utils import draw_bounding_boxes, draw_keypoints, draw_segmentation_masks

from .structures import RefTargets

PALETTE = [(255, 64, 64), (64, 200, 255), (255, 200, 0), (120, 255, 120), (255, 120, 255)]
GT_COLOUR = (0, 255, 0)
#: smaller images are upscaled by the whole factor that brings their long side closest to this
MIN_LONG_SIDE = 512
#: larger images are downscaled to this long side
MAX_LONG_SIDE = 2048


def output_size(
    width: int, height: int, min_long_side: int = MIN_LONG_SIDE, max_long_side: int = MAX_LONG_SIDE
) -> tuple[int, int]:
    """``(width, height)`` of the drawing of a ``width x height`` image.

    An image whose long side exceeds ``max_long_side`` is downscaled to exactly
    that long side (aspect kept, sides rounded). Any other is upscaled by the
    integer factor ``k >= 1`` nearest to ``min_long_side / long side`` (64 px:
    8x, 100 px: 5x, 300 px: 2x, 400 px and above: 1x), capped so the long side
    stays within ``max_long_side``; it is never downscaled.
    """
    long_side = max(width, height)
    if long_side > max_long_side:
        ratio = max_long_side / long_side
        return max(1, round(width * ratio)), max(1, round(height * ratio))
    factor = max(1, min(round(min_long_side / long_side), max_long_side // long_side))
    return width * factor, height * factor


def draw_refs(
    image: Image.Image,
    refs: RefTargets,
    title: str | None = None,
    gt: RefTargets | None = None,
    min_long_side: int = MIN_LONG_SIDE,
    max_long_side: int = MAX_LONG_SIDE,
) -> Image.Image:
    """A new RGB image: ``image`` resized by :func:`output_size` with the
    predicted referents drawn in palette colours (masks blended at 50 %, boxes
    outlined and labelled with their phrase, points as dots), the optional
    ground-truth boxes outlined in green, and ``title`` on a black bar above.

    Geometry is in ``image``'s pixels (the canonical original-image frame) and
    is scaled with it; a box outline lies on the box's outermost pixels.
    """
    rgb = image.convert("RGB")
    out_w, out_h = output_size(rgb.width, rgb.height, min_long_side, max_long_side)
    # whole-factor upscaling with NEAREST keeps every source pixel a sharp
    # block (masks below are scaled the same way, so they stay aligned)
    resample = Image.Resampling.NEAREST if out_w >= rgb.width else Image.Resampling.LANCZOS
    canvas = pil_to_tensor(rgb.resize((out_w, out_h), resample))
    sx, sy = out_w / rgb.width, out_h / rgb.height
    long_side = max(out_w, out_h)
    line = max(1, round(long_side / 320))  # 2 px at 512, 6 px at 2048
    colours = [PALETTE[i % len(PALETTE)] for i in range(len(refs))]

    if "masks" in refs and len(refs):
        masks = F.interpolate(refs.masks[:, None].to(torch.uint8), size=(out_h, out_w))
        canvas = draw_segmentation_masks(canvas, masks[:, 0].bool(), alpha=0.5, colors=colours)
    if gt is not None and len(gt):
        gt_outline = _outline(gt.boxes, sx, sy, out_w, out_h)
        canvas = draw_bounding_boxes(canvas, gt_outline, colors=GT_COLOUR, width=max(1, line // 2))
    outline = _outline(refs.boxes, sx, sy, out_w, out_h)
    if len(refs):
        canvas = draw_bounding_boxes(canvas, outline, colors=colours, width=line)
    if "points" in refs:
        radius = max(2, round(1.5 * line))
        for pts, colour in zip(refs.points, colours, strict=True):
            scaled = pts.float() * torch.tensor([sx, sy])
            canvas = draw_keypoints(canvas, scaled[None], colors=colour, radius=radius)

    # Text stays with PIL: torchvision's labels use Pillow's fixed-size bitmap
    # font unless given a TrueType file path (font_size is then ignored), while
    # ImageFont.load_default(size=) scales Pillow's built-in font with the image.
    drawing = to_pil_image(canvas)
    font_size = max(10, round(long_side / 48))
    font = ImageFont.load_default(size=font_size)
    draw = ImageDraw.Draw(drawing)
    for (x1, y1, _, _), phrase, colour in zip(outline.tolist(), refs.phrases, colours, strict=True):
        if phrase:
            draw.text(
                (x1 + line + 1, y1 + line + 1),
                phrase,
                fill=colour,
                font=font,
                stroke_width=max(1, line // 2),  # legible on any background
                stroke_fill=(0, 0, 0),
            )
    if title:
        bar = font_size + 2 * line
        titled = Image.new("RGB", (out_w, out_h + bar), (0, 0, 0))
        titled.paste(drawing, (0, bar))
        ImageDraw.Draw(titled).text((line, line), title, fill=(255, 255, 255), font=font)
        drawing = titled
    return drawing


def _outline(boxes: torch.Tensor, sx: float, sy: float, width: int, height: int) -> torch.Tensor:
    """Pixel-edge xyxy boxes scaled into a ``width x height`` drawing, as the
    inclusive pixel bounds ``draw_bounding_boxes`` draws between: the far edge
    ``x2`` bounds pixel ``x2 - 1``, so the outline covers the box's own pixels."""
    scaled = (boxes.float() * torch.tensor([sx, sy, sx, sy])).round()
    x1 = scaled[:, 0].clamp(0, width - 1)
    y1 = scaled[:, 1].clamp(0, height - 1)
    # a box thinner than one output pixel still gets a one-pixel outline
    x2 = (scaled[:, 2] - 1).clamp(max=width - 1).maximum(x1)
    y2 = (scaled[:, 3] - 1).clamp(max=height - 1).maximum(y1)
    return torch.stack([x1, y1, x2, y2], dim=1)
