"""An out-of-tree codec: Qwen-VL-style integer coordinates.

A box is ``<box>(x1,y1),(x2,y2)</box>`` with each value an integer in
``[0, 1000)`` of the model-input side. Load it from a config with::

    custom_imports = dict(imports=["unigrounding.plugins.example_codec"], allow_failed_imports=False)
    model = dict(codec=dict(type="int_coords"))

It is also the worked example of ``docs/adding_a_codec.md``: nothing in the
library names it.
"""

from __future__ import annotations

import re

import numpy as np

from unigrounding.codecs.base import Codec, Processor
from unigrounding.registry import CODECS
from unigrounding.structures import GroundingDataSample, RefTargets

_BOX = re.compile(r"<box>\s*\((\d+),(\d+)\)\s*,\s*\((\d+),(\d+)\)\s*</box>")
_OPEN = re.compile(r"<box>")
BINS = 1000


@CODECS.register_module()
class IntCoordsProcessor(Processor):
    special_tokens = ("<box>", "</box>")

    def encode(self, refs: RefTargets, sample: GroundingDataSample, role: str) -> str:
        side = np.tile([sample.frame.input_hw[1], sample.frame.input_hw[0]], 2)
        boxes = sample.frame.boxes_to_input(refs.boxes.numpy()) / side
        ints = np.clip(np.floor(boxes * BINS), 0, BINS - 1).astype(int)
        return "".join(f"<box>({a},{b}),({c},{d})</box>" for a, b, c, d in ints)

    def parse(self, text: str, sample: GroundingDataSample) -> RefTargets:
        side = np.tile([sample.frame.input_hw[1], sample.frame.input_hw[0]], 2)
        limit = np.tile(sample.ori_shape[::-1], 2)
        boxes = []
        matches = list(_BOX.finditer(text))
        failures = len(_OPEN.findall(text)) - len(matches)
        for m in matches:
            v = (
                np.array([int(g) for g in m.groups()], dtype=np.float64) + 0.5
            ) / BINS  # bin centres
            box = sample.frame.boxes_to_original(v * side)[0].clip(0, limit)
            if box[2] > box[0] and box[3] > box[1]:
                boxes.append(box)
            else:
                failures += 1
        refs = RefTargets.build(boxes) if boxes else RefTargets.empty()
        refs.set_metainfo({"parse_failures": failures})
        return refs


@CODECS.register_module(name="int_coords")
class IntCoordsCodec(Codec):
    kind = "vocab"
    units = ("box",)
    min_roundtrip_iou = 0.95

    def __init__(self) -> None:
        super().__init__(IntCoordsProcessor())
