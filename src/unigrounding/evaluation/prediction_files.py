"""Predictions made elsewhere, read as the referents our metrics score.

A predictions file is JSON (a list) or JSON lines, one record per answered
sample, in one of :data:`FORMATS`:

* ``unigrounding`` — our own records (what ``unigrounding eval --checkpoint``
  writes): ``{"sample_id", "boxes", "scores", "masks" (COCO RLE), "phrases",
  "text"}``.
* ``lmms-eval`` — the ``--log_samples`` records of lmms-eval's RefCOCO
  ``*_bbox_rec`` tasks: the answer is ``filtered_resps[0]`` (else
  ``resps[0][0]``), the sample is named by its ``doc`` (``file_name`` and the
  expression, ``answer``), and the boxes are read as lmms-eval reads them.
* ``qwen2.5-vl`` / ``qwen2-vl`` — Qwen-VL answers, e.g. ms-swift's
  ``infer`` output: the answer text is ``response`` (or ``text`` / ``answer``)
  and holds JSON ``{"bbox_2d": [x1, y1, x2, y2]}`` objects or
  ``<|box_start|>(x1,y1),(x2,y2)<|box_end|>`` boxes.

A record other than lmms-eval's names its sample by the first of
``sample_id`` (ours), ``sent_id`` (the dataset's sentence id) or ``image``
(file name) with ``expression``.

Every answer's coordinate frame is explicit (:data:`FRAMES`): each format
has a default — the frame its producer writes — that ``frame=`` (``--frame``)
or a record's own ``"frame"`` overrides, and the frame used is written into
the result. Boxes come back to original-image pixels through the same
recorded transforms (:class:`~unigrounding.structures.Frame`) the model
input uses, and then pass :func:`answer_refs`, the checks every codec's
decoded answer passes (counted repairs and failures, never an exception).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..structures import (
    QWEN2_5_VL_PIXELS,
    Frame,
    GroundingDataSample,
    RefTargets,
    Resize,
    rle_decode,
    smart_resize_frame,
    square_resize_frame,
)

#: What a coordinate of an answer is measured in.
FRAMES = {
    "pixels": "original-image pixels",
    "normalized": "0-1, x divided by the image width W and y by its height H (lmms-eval)",
    "norm1000": "0-1000, x / W and y / H times 1000 (Qwen2-VL)",
    "padded_square": "0-1 of the image padded to a centred square (unigrounding text_coords)",
    "qwen2_5_vl": (
        "absolute pixels of Qwen2.5-VL's input: the image resized to multiples of 28 "
        "within [min_pixels, max_pixels] (transformers' smart_resize)"
    ),
}

#: Each format's default frame: the frame its producer answers in.
FORMATS = {
    "unigrounding": "pixels",
    "lmms-eval": "normalized",
    "qwen2.5-vl": "qwen2_5_vl",
    "qwen2-vl": "norm1000",
}

_NUMBER = r"(-?\d+(?:\.\d+)?)"
# lmms-eval's RefCOCO REC reading (``parse_float_sequence_within``): four
# numbers in square brackets, comma-separated, so one file scores as there
_BRACKETED = r"\[\s*" + r",\s*".join([_NUMBER] * 4) + r"\s*\]"
# Qwen-VL's corner pairs, inside <|box_start|> ... <|box_end|> or bare
_CORNERS = rf"\(\s*{_NUMBER}\s*,\s*{_NUMBER}\s*\)\s*,\s*\(\s*{_NUMBER}\s*,\s*{_NUMBER}\s*\)"
_BOX = re.compile(f"{_BRACKETED}|{_CORNERS}")


def boxes_in_text(text: str) -> list[list[float]]:
    """Every box written in an answer, in order: ``[x1, y1, x2, y2]`` lists
    (lmms-eval's pattern; Qwen2.5-VL's JSON ``bbox_2d`` values are such lists)
    and ``(x1,y1),(x2,y2)`` corner pairs (Qwen2-VL's box tokens)."""
    boxes = []
    for match in _BOX.finditer(text):
        values = [v for v in match.groups() if v is not None]
        boxes.append([float(v) for v in values])
    return boxes


def answer_frame(name: str, hw: tuple[int, int], pixels: tuple[int, int] = QWEN2_5_VL_PIXELS):
    """The :class:`Frame` from an ``(H, W)`` image to the answer frame ``name``."""
    if name not in FRAMES:
        raise ValueError(f"unknown frame {name!r}; expected one of {sorted(FRAMES)}")
    frame = Frame(hw)
    if name == "normalized":
        return frame.then(Resize(hw, (1, 1)))
    if name == "norm1000":
        return frame.then(Resize(hw, (1000, 1000)))
    if name == "padded_square":
        return square_resize_frame(hw, 1)
    if name == "qwen2_5_vl":  # the input size an absolute answer refers to
        return smart_resize_frame(hw, pixels=pixels)
    return frame


def answer_refs(
    boxes: Sequence[Sequence[float]],
    hw: tuple[int, int],
    frame: Frame,
    masks: np.ndarray | None = None,
    scores: Sequence[float] | None = None,
    phrases: Sequence[str] | None = None,
    failures: int = 0,
) -> RefTargets:
    """An answer's boxes (in ``frame``) as referents in original pixels, read
    as every codec's answer is: a row that is not four finite numbers, or has
    no area, is a failure; swapped corners are put back (a repair); then
    :meth:`RefTargets.fit_to_image` clips (repairs) and drops what lies
    outside the image (failures). Masks, scores and phrases follow their rows."""
    rows = [np.asarray(b, dtype=np.float64).reshape(-1) for b in boxes]
    keep = [i for i, b in enumerate(rows) if b.shape == (4,) and np.isfinite(b).all()]
    failures += len(rows) - len(keep)
    values = np.array([rows[i] for i in keep], dtype=np.float64).reshape(-1, 4)
    ordered = np.concatenate(
        [np.minimum(values[:, :2], values[:, 2:]), np.maximum(values[:, :2], values[:, 2:])], 1
    )
    repairs = int((ordered != values).any(1).sum())
    area = (ordered[:, 2:] > ordered[:, :2]).all(1)
    failures += int((~area).sum())
    keep = [i for i, ok in zip(keep, area, strict=True) if ok]
    if not keep:
        return RefTargets.empty(parse_failures=failures, parse_repairs=repairs)
    refs = RefTargets.build(
        frame.boxes_to_original(ordered[area]),
        phrases=[phrases[i] for i in keep] if phrases else None,
        scores=[scores[i] for i in keep] if scores else None,
        masks=masks[keep] if masks is not None else None,
    )
    refs.set_metainfo({"parse_failures": failures, "parse_repairs": repairs})
    return refs.fit_to_image(*hw)


@dataclass
class PredictionRecord:
    """One answered sample of a predictions file, as read: how it names its
    sample (``keys``), its boxes or answer text, and its frame."""

    where: str
    keys: dict
    frame: str
    boxes: list | None = None
    text: str = ""
    masks: list | None = None
    scores: list | None = None
    phrases: list | None = None
    gt_box: list | None = field(default=None, repr=False)  # lmms-eval's, to tell twins apart

    def refs(self, hw: tuple[int, int], pixels: tuple[int, int]) -> RefTargets:
        """The answer as referents in original pixels of an ``hw`` image."""
        frame = answer_frame(self.frame, hw, pixels)
        if self.boxes is not None:
            boxes, failures = self.boxes, 0
        else:
            boxes = boxes_in_text(self.text)
            failures = int(not boxes and bool(self.text.strip()))
        masks = None
        if self.masks:
            masks = np.stack([rle_decode(m, *hw, where=self.where) for m in self.masks])
        return answer_refs(boxes, hw, frame, masks, self.scores, self.phrases, failures)


def read_prediction_file(
    path: str | Path, fmt: str = "unigrounding", frame: str | None = None
) -> list[PredictionRecord]:
    """The records of a predictions file in format ``fmt``; ``frame``
    overrides the format's default frame. Errors name the file and record."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown predictions format {fmt!r}; expected one of {sorted(FORMATS)}")
    if frame is not None and frame not in FRAMES:
        raise ValueError(f"unknown frame {frame!r}; expected one of {sorted(FRAMES)}")
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"predictions file not found: {path}")
    text = path.read_text()
    try:
        raw = (
            json.loads(text)
            if text.lstrip().startswith("[")
            else [json.loads(line) for line in text.splitlines() if line.strip()]
        )
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not JSON or JSON lines (line {exc.lineno}: {exc.msg})") from exc
    read = _read_lmms_eval if fmt == "lmms-eval" else _read_keyed
    out = []
    for i, rec in enumerate(raw):
        where = f"{path} record {i}"
        if not isinstance(rec, dict):
            raise ValueError(f"{where}: not a JSON object")
        frame_name = frame or rec.get("frame") or FORMATS[fmt]
        if frame_name not in FRAMES:
            raise ValueError(f"{where}: unknown frame {frame_name!r}")
        out.append(read(rec, where, fmt, frame_name))
    return out


def _read_keyed(rec: dict, where: str, fmt: str, frame: str) -> PredictionRecord:
    keys = {k: rec[k] for k in ("sample_id", "sent_id") if k in rec}
    image = rec.get("image", rec.get("images"))
    if isinstance(image, list):  # ms-swift: a list of paths or {"path": ...}
        image = image[0] if len(image) == 1 else None
    if isinstance(image, dict):
        image = image.get("path")
    if image is not None and "expression" in rec:
        keys["image_expression"] = (str(image), str(rec["expression"]))
    if not keys:
        raise ValueError(f"{where}: needs 'sample_id', 'sent_id' or 'image' with 'expression'")
    if fmt == "unigrounding":
        if not isinstance(rec.get("boxes"), list):
            raise ValueError(f"{where}: needs 'sample_id' and 'boxes' (a list)")
        return PredictionRecord(
            where,
            keys,
            frame,
            boxes=rec["boxes"],
            text=rec.get("text", ""),
            masks=rec.get("masks"),
            scores=rec.get("scores"),
            phrases=rec.get("phrases"),
        )
    answer = next((rec[k] for k in ("response", "text", "answer") if k in rec), None)
    if not isinstance(answer, str):
        raise ValueError(f"{where}: needs the answer text in 'response', 'text' or 'answer'")
    return PredictionRecord(where, keys, frame, text=answer)


def _read_lmms_eval(rec: dict, where: str, fmt: str, frame: str) -> PredictionRecord:
    doc = rec.get("doc")
    if (
        not isinstance(doc, dict)
        or "file_name" not in doc
        or not isinstance(doc.get("answer"), str)
    ):
        raise ValueError(
            f"{where}: not an lmms-eval RefCOCO bbox_rec record (needs 'doc' with "
            "'file_name' and the expression as 'answer')"
        )
    if rec.get("filtered_resps"):
        answer = rec["filtered_resps"][0]
    elif rec.get("resps") and rec["resps"][0]:
        answer = rec["resps"][0][0]
    else:
        raise ValueError(f"{where}: no answer ('filtered_resps' or 'resps')")
    keys = {"image_expression": (doc["file_name"], doc["answer"])}
    return PredictionRecord(where, keys, frame, text=str(answer), gt_box=doc.get("bbox"))


def _expression_key(text: str) -> str:
    return " ".join(text.lower().split())


class SampleIndex:
    """Test samples by every name a predictions record may give them."""

    def __init__(self, samples: Iterable[GroundingDataSample]) -> None:
        self.samples = list(samples)
        self.by_key: dict[tuple, list[int]] = {}
        for i, s in enumerate(self.samples):
            names = [("sample_id", str(s.sample_id))]
            if s.metainfo.get("sent_id") is not None:
                names.append(("sent_id", str(s.metainfo["sent_id"])))
            image = Path(s.image_path).name
            names.append(("image_expression", image, _expression_key(s.expression)))
            for name in names:
                self.by_key.setdefault(name, []).append(i)

    def match(self, record: PredictionRecord) -> int:
        """The index of the sample ``record`` answers; errors name the record."""
        for kind, value in record.keys.items():
            if kind == "image_expression":
                image, expression = value
                candidates = set()
                for key in {Path(image).name, _refs_image(Path(image).name)}:
                    candidates |= set(self.by_key.get((kind, key, _expression_key(expression)), []))
                found = sorted(candidates)
            else:
                found = self.by_key.get((kind, str(value)), [])
            if len(found) > 1 and record.gt_box is not None:
                found = [i for i in found if self._has_box(i, record.gt_box)]
            if len(found) == 1:
                return found[0]
            if len(found) > 1:
                raise ValueError(
                    f"{record.where}: {kind} {value!r} names {len(found)} test samples "
                    f"({[self.samples[i].sample_id for i in found[:3]]}); give 'sample_id'"
                )
        raise ValueError(f"{record.where}: names no test sample ({record.keys})")

    def _has_box(self, i: int, normalized_box: Sequence[float]) -> bool:
        """Whether sample ``i``'s first target, divided by W and H, is ``normalized_box``."""
        s = self.samples[i]
        if not len(s.gt_refs):
            return False
        h, w = s.ori_shape
        box = s.gt_refs.boxes[0].double() / torch.tensor([w, h, w, h], dtype=torch.float64)
        return bool(
            np.allclose(box.numpy(), np.asarray(normalized_box, dtype=np.float64), atol=1e-4)
        )


def _refs_image(name: str) -> str:
    """The COCO image a RefCOCO refs ``file_name`` names: those carry the
    annotation's index (``COCO_train2014_000000581857_16.jpg`` is image
    ``COCO_train2014_000000581857.jpg``); other names are returned as they are."""
    match = re.fullmatch(r"(.+_\d{12})_\d+(\.\w+)", name)
    return f"{match.group(1)}{match.group(2)}" if match else name
