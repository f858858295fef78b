"""Checking a dataset's records against their images before any is drawn.

A missing or unreadable image, a recorded size the image does not have, a mask
that does not decode at the image's size and a box outside the image would
otherwise surface only when the sample is packed, mid-run.
:class:`~unigrounding.data.GroundingDataset` runs :class:`RecordCheck` over
its records at construction (its ``validate`` argument, :data:`VALIDATE_MODES`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator

from ..structures import GeometryError, rle_decode
from .annotations import RecordProblem
from .pipeline import image_hw, needs_masks

#: ``validate`` values: ``error`` raises one error listing every bad record;
#: ``clip`` clips boxes to the image and drops the records it cannot mend;
#: ``off`` checks nothing.
VALIDATE_MODES = ("error", "clip", "off")

# the problems' kinds (RecordProblem.kind), counted in summaries
IMAGE_MISSING = "image missing"
IMAGE_UNREADABLE = "image unreadable"
SIZE_MISMATCH = "size mismatch"
BAD_SEGMENTATION = "bad segmentation"
EMPTY_MASK = "empty mask"
BOX_OUTSIDE = "box outside the image"

# an xywh box summed to x2 = x + w can overshoot the edge by float rounding;
# a thousandth of a pixel is no annotation error
_EDGE_TOLERANCE = 1e-3


class RecordCheck:
    """Checks records (``image_path``, optional ``ori_shape``, geometry entries
    with ``box`` and optional ``segmentation`` in ``geometry_fields``):

    * the image exists and its header is readable; its size, EXIF-upright as
      the pipeline reads it (:func:`~unigrounding.data.pipeline.image_hw`),
      matches ``ori_shape``. Each image file is read once: many records share one;
    * where the pipeline decodes masks (:func:`~unigrounding.data.pipeline.needs_masks`),
      each entry's segmentation decodes at the image's size to a non-empty mask
      (one decode per segmentation object: a loader's samples of one
      annotation share it);
    * every box lies inside the image.

    ``clip``: a box outside the image is clipped to it (counted in
    :attr:`clipped`); a record with any other problem, or a box with nothing
    inside the image, is dropped. :attr:`problems` lists what made records
    fail (``clip=False``: every problem; nothing is changed or dropped).
    """

    def __init__(self, geometry_fields: Iterable[str], clip: bool = False) -> None:
        self.geometry_fields, self.clip = tuple(geometry_fields), clip
        self.problems: list[RecordProblem] = []
        self.checked = 0
        self.clipped = 0
        self._images: dict[str, tuple[int, int] | tuple[str, str]] = {}
        # keyed by id(): the segmentation object is kept in the value so that
        # its id cannot be reused by a later object while the check runs
        self._masks: dict[tuple[int, int, int], tuple[object, tuple[str, str] | None]] = {}

    def records(self, records: Iterable[dict]) -> Iterator[dict]:
        """``records``, checked one by one as they are drawn; with ``clip``,
        clipped and without the dropped ones."""
        for record in records:
            self.checked += 1
            record, problems = self._check(record)
            self.problems += problems
            if not (self.clip and problems):
                yield record

    def bad_records(self) -> int:
        """How many records have at least one problem."""
        return len({(p.source, p.record) for p in self.problems})

    def summary(self) -> str:
        """``"<kind> <count>, ..."`` of :attr:`problems` (and clipped boxes)."""
        counts = Counter(p.kind for p in self.problems)
        parts = [f"{kind} {n}" for kind, n in sorted(counts.items())]
        if self.clipped:
            parts.append(f"boxes clipped {self.clipped}")
        return ", ".join(parts)

    def _check(self, record: dict) -> tuple[dict, list[RecordProblem]]:
        source = str(record.get("source", record["image_path"]))
        rid = str(record.get("sample_id", record.get("image_id", "?")))

        def problem(field: str, kind: str, detail: str) -> RecordProblem:
            return RecordProblem(source, rid, field, kind, detail)

        header = self._header(record["image_path"])
        if isinstance(header[0], str):
            return record, [problem("image_path", *header)]
        hw = header
        if "ori_shape" in record and tuple(record["ori_shape"]) != hw:
            detail = f"image is {hw} (height, width), annotation says {tuple(record['ori_shape'])}"
            return record, [problem("ori_shape", SIZE_MISMATCH, detail)]
        problems, mended, clipped = [], {}, 0
        for name in self.geometry_fields:
            entries = record.get(name) or []
            masks = needs_masks(entries)
            kept = []
            for i, entry in enumerate(entries):
                field = f"{name}[{i}]"
                if masks and (found := self._mask(entry.get("segmentation"), hw, field)):
                    problems.append(problem(f"{field}.segmentation", *found))
                box = _inside(entry["box"], hw)
                if box is None or (box is not entry["box"] and not self.clip):
                    detail = (
                        f"box {list(entry['box'])} is outside the image "
                        f"(height {hw[0]}, width {hw[1]})"
                    )
                    problems.append(problem(f"{field}.box", BOX_OUTSIDE, detail))
                elif box is not entry["box"]:
                    entry, clipped = dict(entry, box=box), clipped + 1
                kept.append(entry)
            if entries:
                mended[name] = kept
        if clipped and not problems:
            self.clipped += clipped
            record = dict(record, **mended)  # copies: the loader's records may share entries
        return record, problems

    def _header(self, path: str) -> tuple[int, int] | tuple[str, str]:
        """The image's upright ``(height, width)``, or the problem's kind and detail."""
        if path not in self._images:
            try:
                self._images[path] = image_hw(path)
            except FileNotFoundError:
                self._images[path] = (IMAGE_MISSING, f"image file not found: {path}")
            except ValueError as exc:
                self._images[path] = (
                    IMAGE_UNREADABLE,
                    f"unreadable image file {path} ({exc.__cause__})",
                )
        return self._images[path]

    def _mask(
        self, segmentation: object, hw: tuple[int, int], field: str
    ) -> tuple[str, str] | None:
        """The problem (kind, detail) of ``segmentation`` at ``hw``, if any."""
        if segmentation is None:
            return BAD_SEGMENTATION, "no segmentation, but the sample's units need masks"
        key = (id(segmentation), *hw)
        if key not in self._masks:
            try:
                found = (
                    None
                    if rle_decode(segmentation, *hw, where=field).any()
                    else (EMPTY_MASK, "empty mask")
                )
            except GeometryError as exc:
                found = BAD_SEGMENTATION, str(exc).removeprefix(f"{field}: ")
            self._masks[key] = segmentation, found
        return self._masks[key][1]


def _inside(box: list[float], hw: tuple[int, int]) -> list[float] | None:
    """``box`` itself where it lies inside the image (give or take the
    tolerance), else clipped to it; ``None`` if nothing of it is inside."""
    h, w = hw
    x1, y1, x2, y2 = (float(v) for v in box)
    tol = _EDGE_TOLERANCE
    if x1 >= -tol and y1 >= -tol and x2 <= w + tol and y2 <= h + tol:
        return box
    x1, y1, x2, y2 = max(x1, 0.0), max(y1, 0.0), min(x2, float(w)), min(y2, float(h))
    return [x1, y1, x2, y2] if x2 > x1 and y2 > y1 else None
