"""``text_coords``: plain-text normalized coordinates (Shikra-style baseline).

A box is ``[x1,y1,x2,y2]`` with each value divided by the model-input side
(the padded square the model sees) and written with ``decimals`` digits; several
instances of one referent are joined with ``;``. Points are ``[x,y]``. A mask or
scribble prompt is written as its box (text coordinates cannot carry shape).
Quantization bound: each coordinate is off by at most half a step, i.e.
``0.5 * 10**-decimals`` of the input side.
"""

from __future__ import annotations

import re

import numpy as np

from ..registry import CODECS
from ..structures import GroundingDataSample, RefTargets
from .base import Codec, Processor

_NUMBER = r"\s*(-?\d+(?:\s*\.\s*\d+)?)\s*"
_BOX = re.compile(r"\[" + ",".join([_NUMBER] * 4) + r"\]")
_BRACKET = re.compile(r"\[[^\[\]]*\]?")
_LEAD = re.compile(
    r"^[\s,.;:]*(?:and\s+)?(?:a\s+|an\s+|the\s+)?"
)  # "..., and a dog [...]" -> "dog"


@CODECS.register_module()
class TextCoordsProcessor(Processor):
    def __init__(self, decimals: int = 3) -> None:
        self.decimals = decimals

    def _fmt(self, values: np.ndarray) -> str:
        return "[" + ",".join(f"{v:.{self.decimals}f}" for v in values.clip(0, 1)) + "]"

    def encode(self, refs: RefTargets, sample: GroundingDataSample, role: str) -> str:
        side = sample.frame.input_hw[1], sample.frame.input_hw[0]
        parts = []
        for i in range(len(refs)):
            if refs.units[i] == "point" and "points" in refs:
                xy = sample.frame.points_to_input(refs.points[i].numpy())[0] / side
                parts.append(self._fmt(xy))
            else:
                box = sample.frame.boxes_to_input(refs.boxes[i].numpy())[0]
                parts.append(self._fmt(box / np.tile(side, 2)))
        return ";".join(parts)

    def parse(self, text: str, sample: GroundingDataSample) -> RefTargets:
        side = np.tile([sample.frame.input_hw[1], sample.frame.input_hw[0]], 2).astype(np.float64)
        boxes, phrases, groups = [], [], []
        failures, repairs, group, last_end = 0, 0, -1, 0
        for bracket in _BRACKET.finditer(text):
            match = _BOX.fullmatch(bracket.group(0))
            values = None
            if match:
                values = np.array([float(re.sub(r"\s", "", v)) for v in match.groups()])
            if values is None or not np.all(np.isfinite(values)):
                failures += 1
                continue
            # read, but only after a repair: values outside [0, 1], corners swapped
            repaired = bool(((values < 0) | (values > 1)).any())
            values = values.clip(0, 1)
            repaired |= bool(values[0] > values[2] or values[1] > values[3])
            x1, x2 = sorted(values[0::2])
            y1, y2 = sorted(values[1::2])
            if x2 <= x1 or y2 <= y1:
                failures += 1
                continue
            box = sample.frame.boxes_to_original(np.array([x1, y1, x2, y2]) * side)[0]
            box = box.clip(0, np.tile(sample.ori_shape[::-1], 2))
            if box[2] <= box[0] or box[3] <= box[1]:  # entirely in the padding
                failures += 1
                continue
            between = text[last_end : bracket.start()]
            if between.strip() != ";" or group < 0:
                group += 1
                phrase = _LEAD.sub("", between).strip(" ,.;:")
            repairs += repaired
            boxes.append(box)
            phrases.append(phrase)
            groups.append(group)
            last_end = bracket.end()
        if not boxes:
            return RefTargets.empty(parse_failures=failures)
        refs = RefTargets.build(boxes, phrases=phrases, group_ids=groups)
        refs.set_metainfo({"parse_failures": failures, "parse_repairs": repairs})
        return refs


@CODECS.register_module(name="text_coords")
class TextCoordsCodec(Codec):
    """Regions are ordinary text tokens: no parameters, no extra model outputs."""

    kind = "vocab"
    units = ("box",)
    min_roundtrip_iou = 0.95  # tiny ShapesRef boxes at 2-3 decimals; see test_text_coords

    def __init__(self, decimals: int = 3) -> None:
        super().__init__(TextCoordsProcessor(decimals))
