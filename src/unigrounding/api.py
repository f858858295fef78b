"""The Python API: ``ug.load`` / ``ug.build`` and a model handle with
``ground`` and ``chat`` that speak original-image pixels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from mmengine.config import Config
from PIL import Image

from .data.pipeline import image_tensor, load_rgb
from .data.tasks import TASK_TEMPLATES
from .engine.export import build_exported
from .models import GroundingMLLM
from .models.chat import plain_text
from .registry import MODELS
from .structures import (
    IMAGE,
    Box,
    GroundingDataSample,
    Mask,
    Point,
    RefTargets,
    Scribble,
    mask_to_box,
)

# at load, not lazily in visualize(): a submodule's first import binds it on its
# package, which would replace ``ug.visualize`` (this module's function) once
# the package has bound it
from .visualize import draw_refs

Prompt = Box | Point | Scribble | Mask


class Grounder:
    """A trained model ready for inference; the codec is whatever it was trained with."""

    def __init__(self, model: GroundingMLLM) -> None:
        self.model = model.eval()
        tok = model.tokenizer
        # every string the tokenizer would read as one control token
        self._specials = {*tok.all_special_tokens, *tok.get_added_vocab(), IMAGE}

    def chat(self, image, text: str, prompts: list[Prompt] | None = None) -> tuple[str, RefTargets]:
        """Answer ``text`` (which may hold ``{prompt:i}`` slots and one
        ``<image>`` marking where the image goes) about ``image``. Any other
        special token of the vocabulary typed in ``text`` (``[GND]``,
        ``<r0>``) is plain text, not a control token.

        Returns the generated text and the regions it refers to, in original pixels.
        """
        text = plain_text(text, self._specials - {IMAGE})
        img = load_rgb(image, "chat image")
        frame = self.model.input_frame((img.height, img.width))
        sample = GroundingDataSample(
            metainfo={
                "sample_id": "api",
                "ori_shape": (img.height, img.width),
                "img_shape": frame.input_hw,
                "frame": frame,
                "task": "chat",
            }
        )
        sample.prompt_refs = _prompt_refs(prompts or [], (img.height, img.width))
        sample.gt_refs = RefTargets.empty()
        body = text if "<image>" in text else "<image>\n" + text
        sample.conversation = [{"role": "user", "text": body}, {"role": "assistant", "text": ""}]
        inputs = image_tensor(frame.image_to_input(img))[None]
        out = self.model(inputs, [sample], mode="predict")[0]
        return out.pred_text, out.pred_refs

    def ground(self, image, query: str) -> RefTargets:
        """Regions for a referring expression (the REC prompt the model was trained on)."""
        return self.chat(image, self.rec_question(query))[1]

    def rec_question(self, query: str) -> str:
        """The question :meth:`ground` asks :meth:`chat` for ``query``: the REC
        template with ``query`` as plain text (no control tokens, no slots)."""
        query = plain_text(query, self._specials, slots=True)
        return TASK_TEMPLATES["rec"][0].replace("{expression}", query)


def _prompt_geometry(p: Prompt) -> tuple[list[float], str, np.ndarray]:
    """Box, unit and points of one user prompt (original pixels)."""
    if isinstance(p, Box):
        return p.xyxy, "box", np.zeros((0, 2))
    if isinstance(p, Point):
        return [p.x - 0.5, p.y - 0.5, p.x + 0.5, p.y + 0.5], "point", np.array([[p.x, p.y]])
    if isinstance(p, Scribble):
        xy = np.array(p.points, dtype=float)
        return [*(xy.min(0) - 0.5), *(xy.max(0) + 0.5)], "scribble", xy
    if isinstance(p, Mask):
        return mask_to_box(p.array), "mask", np.zeros((0, 2))
    raise TypeError(f"unsupported prompt {p!r}")


def _prompt_refs(prompts: list[Prompt], hw: tuple[int, int]) -> RefTargets:
    if not prompts:
        return RefTargets.empty()
    boxes, units, points = zip(*(_prompt_geometry(p) for p in prompts), strict=True)
    masks = None
    if any(isinstance(p, Mask) for p in prompts):
        masks = np.stack(
            [
                np.asarray(p.array, bool) if isinstance(p, Mask) else np.zeros(hw, bool)
                for p in prompts
            ]
        )
    return RefTargets.build(list(boxes), units=list(units), points=list(points), masks=masks)


def build(config: str | Path | Config | dict) -> Grounder:
    """Build an untrained model from a config file, ``Config`` or dict."""
    cfg = (
        config
        if isinstance(config, Config)
        else Config.fromfile(str(config))
        if not isinstance(config, dict)
        else Config(config)
    )
    return Grounder(MODELS.build(cfg.model))


def load(path: str | Path, map_location: str = "cpu") -> Grounder:
    """Load an export folder (``unigrounding.json`` + safetensors + ``llm/``).
    Only data is read: no file of the folder is executed."""
    grounder = Grounder(build_exported(path))
    grounder.model.to(torch.device(map_location))
    return grounder


def visualize(
    image: str | Path | Image.Image | np.ndarray, refs: RefTargets, title: str | None = None
) -> Image.Image:
    """A new image: ``image`` (a path, PIL image or array, read upright by
    its EXIF orientation) with the boxes, masks and points of ``refs`` (in its
    original pixels) and their phrases drawn on, sized by
    :func:`unigrounding.visualize.output_size` (small images upscaled, large
    ones capped at 2048 px on the long side)."""
    return draw_refs(load_rgb(image, "visualize image"), refs, title=title)
