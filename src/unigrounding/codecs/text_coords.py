"""``text_coords``: regions as plain-text coordinates, in one of two styles.

``style="normalized"`` (the Shikra-style baseline): a box is ``[x1,y1,x2,y2]``
with each value divided by the model-input side (the padded square the model
sees) and written with ``decimals`` digits; several instances of one referent
are joined with ``;``. Points are ``[x,y]``. Quantization bound: each
coordinate is off by at most half a step, ``0.5 * 10**-decimals`` of the side.

``style="qwen2_5_vl"``: the text Qwen2.5-VL was pretrained on, so the text
baseline on that backbone is its own format (:class:`QwenTextCoordsProcessor`):
integer pixels of the model input (Qwen2.5-VL's absolute coordinates, of its
smart-resized input on its own backbone), JSON ``bbox_2d`` answers and
``<|box_start|>`` boxes in questions. Off by at most half an input pixel.

Either way, a mask or scribble prompt is written as its box (text coordinates
cannot carry shape).
"""

from __future__ import annotations

import json
import re

import numpy as np

from ..registry import CODECS
from ..structures import GroundingDataSample, RefTargets
from .base import Codec, Processor, group_phrase

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


_QWEN_NUMBER = r"\s*(-?\d+(?:\.\d+)?)\s*"
# one JSON object of an answer; its box and label are read inside it
_QWEN_OBJECT = re.compile(r"\{[^{}]*\}")
_QWEN_BOX = re.compile(r'"bbox_2d"\s*:\s*\[' + ",".join([_QWEN_NUMBER] * 4) + r"\]")
_QWEN_LABEL = re.compile(r'"label"\s*:\s*"([^"]*)"')
# a box as Qwen writes it in a question (and Qwen2-VL in answers)
_QWEN_CORNERS = re.compile(
    r"(?:<\|object_ref_start\|>(.*?)<\|object_ref_end\|>\s*)?<\|box_start\|>"
    + rf"\({_QWEN_NUMBER},{_QWEN_NUMBER}\)\s*,\s*\({_QWEN_NUMBER},{_QWEN_NUMBER}\)"
    + r"<\|box_end\|>"
)


@CODECS.register_module()
class QwenTextCoordsProcessor(Processor):
    """Qwen2.5-VL's grounding text, in integer pixels of the model input.

    A target referent is written as JSON, one object per instance,
    ``[{"bbox_2d": [x1, y1, x2, y2], "label": "phrase"}]``, as Qwen2.5-VL
    answers grounding requests; a region in the question as
    ``<|object_ref_start|>phrase<|object_ref_end|><|box_start|>(x1,y1),(x2,y2)<|box_end|>``
    (the phrase part only when the referent has one; a point prompt as one
    corner, ``<|box_start|>(x,y)<|box_end|>`` — Qwen has no point-prompt
    syntax, this is our choice). ``parse`` reads both box
    forms: consecutive instances with the same label form one referent group,
    swapped corners and values outside the input are repaired (counted),
    objects without a readable four-number box are failures."""

    special_tokens = ("<|object_ref_start|>", "<|object_ref_end|>", "<|box_start|>", "<|box_end|>")
    words = ("bbox", "label", "point")

    def encode(self, refs: RefTargets, sample: GroundingDataSample, role: str) -> str:
        frame, high = sample.frame, np.array(sample.frame.input_hw[::-1] * 2)
        phrase = group_phrase(refs, default="")
        label = json.dumps(phrase)
        corners, objects = [], []
        for i in range(len(refs)):
            if role == "prompt" and refs.units[i] == "point" and "points" in refs:
                x, y = np.rint(frame.points_to_input(refs.points[i].numpy())[0]).astype(int)
                corners.append(f"({x},{y})")
                continue
            box = frame.boxes_to_input(refs.boxes[i].numpy())[0]
            x1, y1, x2, y2 = np.rint(box.clip(0, high)).astype(int)
            corners.append(f"({x1},{y1}),({x2},{y2})")
            objects.append(f'{{"bbox_2d": [{x1}, {y1}, {x2}, {y2}], "label": {label}}}')
        if role == "target":
            return "[" + ", ".join(objects) + "]"
        named = f"<|object_ref_start|>{phrase}<|object_ref_end|>" if phrase else ""
        return named + "".join(f"<|box_start|>{c}<|box_end|>" for c in corners)

    def parse(self, text: str, sample: GroundingDataSample) -> RefTargets:
        found = []  # (start, values or None, label)
        for obj in _QWEN_OBJECT.finditer(text):
            box, label = _QWEN_BOX.search(obj.group(0)), _QWEN_LABEL.search(obj.group(0))
            values = [float(v) for v in box.groups()] if box else None
            found.append((obj.start(), values, label.group(1).strip() if label else ""))
        for corner in _QWEN_CORNERS.finditer(text):
            label, *values = corner.groups()
            found.append((corner.start(), [float(v) for v in values], (label or "").strip()))
        high = np.array(sample.frame.input_hw[::-1] * 2, dtype=np.float64)
        boxes, phrases, groups = [], [], []
        failures, repairs, group = 0, 0, -1
        for _, values, label in sorted(found, key=lambda f: f[0]):
            if values is None:
                failures += 1
                continue
            values = np.array(values)
            lo, hi = np.minimum(values[:2], values[2:]), np.maximum(values[:2], values[2:])
            box = np.concatenate([lo, hi]).clip(0, high)
            if not (box[2:] > box[:2]).all():
                failures += 1
                continue
            repairs += bool((box != values).any())
            group += not phrases or label != phrases[-1]
            boxes.append(sample.frame.boxes_to_original(box)[0])
            phrases.append(label)
            groups.append(group)
        if not boxes:
            return RefTargets.empty(parse_failures=failures, parse_repairs=repairs)
        refs = RefTargets.build(boxes, phrases=phrases, group_ids=groups)
        refs.set_metainfo({"parse_failures": failures, "parse_repairs": repairs})
        return refs


#: ``style`` → the processor that writes and reads it.
STYLES = {"normalized": TextCoordsProcessor, "qwen2_5_vl": QwenTextCoordsProcessor}


@CODECS.register_module(name="text_coords")
class TextCoordsCodec(Codec):
    """Regions are ordinary text tokens: no parameters, no extra model outputs.

    Args:
        decimals: digits of a normalized coordinate (``style="normalized"``).
        style: ``"normalized"`` or ``"qwen2_5_vl"`` (module docstring).
    """

    kind = "vocab"
    units = ("box",)
    min_roundtrip_iou = 0.95  # tiny ShapesRef boxes at 2-3 decimals; see test_text_coords

    def __init__(self, decimals: int = 3, style: str = "normalized") -> None:
        if style not in STYLES:
            raise ValueError(f"text_coords style must be one of {sorted(STYLES)}, got {style!r}")
        super().__init__(
            TextCoordsProcessor(decimals) if style == "normalized" else QwenTextCoordsProcessor()
        )
        if style == "qwen2_5_vl":
            # whole pixels of the tiny 64 px input are coarser steps than 2
            # decimals (measured 0.947 on ShapesRef); real Qwen inputs are larger
            self.min_roundtrip_iou = 0.9
