"""Importers for instruction-tuning files people already have.

* :class:`SwiftGroundingDataset` — ms-swift's grounding JSON lines:
  ``{"messages": [...], "images": [path], "objects": {"ref": [...], "bbox":
  [[x1, y1, x2, y2], ...], "bbox_type": "real" | "norm1000"}}``. In each message
  ``<ref-object>`` takes the next ``ref`` and ``<bbox>`` the next ``bbox`` (in
  reading order across the conversation, as ms-swift fills them). A ``<bbox>``
  in a user turn becomes a visual prompt, in an assistant turn a target whose
  phrase is the ``ref`` just before it in that message.
* :class:`LLaVAShikraDataset` — LLaVA-style conversation JSON
  (``[{"id", "image", "conversations": [{"from": "human"|"gpt", "value"}]}]``)
  with Shikra's boxes in the text: ``[x1,y1,x2,y2]`` normalised to the image's
  width and height, several joined by ``;`` in one bracket (one referent
  group). Boxes in human turns become prompts, in gpt turns targets.

Both yield codec-neutral samples: every box becomes a ``{prompt:i}`` /
``{target:i}`` slot, so any codec renders it its own way. Errors name the file
and the record (line).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

from ..registry import DATASETS
from ..structures import validate_box
from .annotations import AnnotationError, annotation_errors, read_json, record_name, require_file
from .base import GroundingDataset
from .pipeline import image_hw

_SWIFT_TOKEN = re.compile(r"<ref-object>|<bbox>")
_NUM = r"\s*(-?\d+(?:\.\d+)?)\s*"
_SHIKRA_BOX = rf"{_NUM},{_NUM},{_NUM},{_NUM}"
_SHIKRA = re.compile(rf"\[({_SHIKRA_BOX}(?:;{_SHIKRA_BOX})*)\]")
_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant"}


def _shikra_slots(text: str, kind: str, into: list, hw: tuple[int, int], where: str) -> str:
    """``text`` with each Shikra bracket replaced by a slot; its boxes (one
    group per bracket, in pixels) appended to ``into``."""

    def slot(match: re.Match) -> str:
        group = len({r["group"] for r in into})
        for chunk in match.group(1).split(";"):
            x1, y1, x2, y2 = (float(v) for v in chunk.split(","))
            box = [x1 * hw[1], y1 * hw[0], x2 * hw[1], y2 * hw[0]]
            validate_box(box, f"{where} box {match.group(0)}")
            into.append({"box": box, "group": group, "unit": "box", "phrase": ""})
        return f"{{{kind}:{group}}}"

    return _SHIKRA.sub(slot, text)


class _ConversationImporter(GroundingDataset):
    def __init__(
        self, data_root: str, file: str, img_dir: str = "", max_samples: int | None = None, **kwargs
    ) -> None:
        self.file, self.img_dir = file, img_dir
        super().__init__(data_root, max_samples, **kwargs)

    def _image(self, name: str, where: str) -> tuple[str, tuple[int, int]]:
        path = Path(self.data_root) / self.img_dir / name
        return str(path), image_hw(path, where)

    @staticmethod
    def _record(sid, image, hw, turns, gt, prompts, where) -> dict:
        if not turns or turns[0]["role"] != "user":
            raise AnnotationError(f"{where}: a conversation must start with a user turn")
        if "<image>" not in turns[0]["text"]:
            turns[0] = dict(turns[0], text="<image>\n" + turns[0]["text"])
        return {
            "sample_id": sid,
            "image_path": image,
            "ori_shape": hw,
            "task": "rec" if gt else "chat",
            "expression": "",
            "source": where,
            "gt": gt,
            "prompts": prompts,
            "conversation": turns,
        }


@DATASETS.register_module()
class SwiftGroundingDataset(_ConversationImporter):
    """ms-swift grounding JSON lines (see the module docstring)."""

    def __init__(self, data_root: str, file: str = "train.jsonl", **kwargs) -> None:
        super().__init__(data_root, file, **kwargs)

    def load_samples(self) -> Iterator[dict]:
        path = require_file(Path(self.data_root) / self.file, "ms-swift file")
        for n, line in enumerate(path.read_text().splitlines(), start=1):
            if not line.strip():
                continue
            where = f"{path} line {n}"
            with annotation_errors(
                where, errors=(json.JSONDecodeError, KeyError, IndexError, TypeError)
            ):
                rec = json.loads(line)
                objects = rec.get("objects") or {}
                refs, boxes = list(objects.get("ref", [])), list(objects.get("bbox", []))
                scale = objects.get("bbox_type", "real")
                image, hw = self._image(rec["images"][0], where)
                messages = [m for m in rec["messages"] if m["role"] != "system"]
            if scale not in ("real", "norm1000"):
                raise AnnotationError(f"{where}: unknown bbox_type {scale!r}")
            gt, prompts, turns = [], [], []
            for message in messages:
                role = _ROLES.get(message["role"])
                if role is None:
                    raise AnnotationError(f"{where}: unknown role {message['role']!r}")
                phrase, pieces, last = "", [], 0
                text = message["content"]
                for token in _SWIFT_TOKEN.finditer(text):
                    pieces.append(text[last : token.start()])
                    last = token.end()
                    if token.group(0) == "<ref-object>":
                        if not refs:
                            raise AnnotationError(f"{where}: more <ref-object> than objects.ref")
                        phrase = str(refs.pop(0))
                        pieces.append(phrase)
                        continue
                    if not boxes:
                        raise AnnotationError(f"{where}: more <bbox> than objects.bbox")
                    box = [float(v) for v in boxes.pop(0)]
                    if scale == "norm1000":
                        box = [
                            box[0] * hw[1] / 1000,
                            box[1] * hw[0] / 1000,
                            box[2] * hw[1] / 1000,
                            box[3] * hw[0] / 1000,
                        ]
                    validate_box(box, f"{where} bbox")
                    into = gt if role == "assistant" else prompts
                    kind = "target" if role == "assistant" else "prompt"
                    into.append(
                        {
                            "box": box,
                            "group": len(into),
                            "unit": "box",
                            "phrase": phrase if role == "assistant" else "",
                        }
                    )
                    pieces.append(f"{{{kind}:{len(into) - 1}}}")
                pieces.append(text[last:])
                turns.append({"role": role, "text": "".join(pieces)})
            yield self._record(f"swift-{n}", image, hw, turns, gt, prompts, where)


@DATASETS.register_module()
class LLaVAShikraDataset(_ConversationImporter):
    """LLaVA-style conversations with Shikra boxes (see the module docstring)."""

    def __init__(self, data_root: str, file: str = "data.json", **kwargs) -> None:
        super().__init__(data_root, file, **kwargs)

    def load_samples(self) -> Iterator[dict]:
        path = Path(self.data_root) / self.file
        for i, rec in enumerate(read_json(path, "LLaVA file")):
            where = record_name(path, "record", i, rec, "id")
            with annotation_errors(where, errors=(KeyError, TypeError)):
                image, hw = self._image(rec["image"], where)
                conversation = [(_ROLES[t["from"]], t["value"]) for t in rec["conversations"]]
            gt, prompts, turns = [], [], []
            for role, text in conversation:
                into, kind = (gt, "target") if role == "assistant" else (prompts, "prompt")
                turns.append({"role": role, "text": _shikra_slots(text, kind, into, hw, where)})
            yield self._record(f"llava-{rec.get('id', i)}", image, hw, turns, gt, prompts, where)
