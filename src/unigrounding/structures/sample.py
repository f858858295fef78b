"""Typed samples: :class:`RefTargets` (per-instance geometry) and
:class:`GroundingDataSample` (one image, its conversation and its referents).

Conversations are codec-neutral. A turn's text may hold ``<image>``, ``{prompt:i}``
and ``{target:i}``; ``i`` indexes a *referent group* (``group_ids``) of
``prompt_refs`` / ``gt_refs``, so one slot can stand for several instances
(one phrase, many objects, as TRP and gRES need). Only a codec's processor
decides how a slot becomes tokens.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import torch
from mmengine.structures import BaseDataElement, InstanceData

from .geometry import mask_to_box, validate_box

UNITS = ("box", "mask", "point", "keypoint", "scribble")
SLOT_PATTERN = r"\{(prompt|target):(\d+)\}"
#: where a conversation's image stands (the model puts its image tokens there)
IMAGE = "<image>"
_State = TypeVar("_State", bound="CodecState")


class RefTargets(InstanceData):
    """Referents, one row per instance, all geometry in original-image pixels.

    Fields (equal length ``N``): ``boxes`` ``(N, 4)`` float xyxy; ``phrases``
    (list[str]); ``units`` (list[str], the unit asked for or produced);
    ``group_ids`` ``(N,)`` long (rows of one referent share it); optional
    ``masks`` ``(N, H, W)`` bool, ``points`` (list of ``(K, 2)`` float tensors),
    ``scores`` ``(N,)``. Metainfo ``parse_failures`` counts unreadable parts of a
    model output, ``parse_repairs`` the parts read only after a repair.
    """

    @classmethod
    def build(
        cls,
        boxes: Sequence[Sequence[float]] | torch.Tensor,
        phrases: Sequence[str] | None = None,
        units: Sequence[str] | None = None,
        group_ids: Sequence[int] | None = None,
        masks: np.ndarray | torch.Tensor | None = None,
        points: Sequence[np.ndarray] | None = None,
        scores: Sequence[float] | None = None,
        where: str = "RefTargets",
    ) -> RefTargets:
        boxes_t = torch.as_tensor(np.asarray(boxes, dtype=np.float32)).reshape(-1, 4)
        for i, box in enumerate(boxes_t.tolist()):
            validate_box(box, f"{where}[{i}]")
        n = len(boxes_t)
        refs = cls()
        refs.boxes = boxes_t
        refs.phrases = list(phrases) if phrases is not None else [""] * n
        refs.units = list(units) if units is not None else ["box"] * n
        bad = [u for u in refs.units if u not in UNITS]
        if bad:
            raise ValueError(f"{where}: unknown unit(s) {bad}; expected one of {UNITS}")
        refs.group_ids = torch.as_tensor(
            list(group_ids) if group_ids is not None else list(range(n)), dtype=torch.long
        )
        if masks is not None:
            refs.masks = torch.as_tensor(np.asarray(masks), dtype=torch.bool).reshape(
                n, *np.shape(masks)[-2:]
            )
        if points is not None:
            refs.points = [
                torch.as_tensor(np.asarray(p, dtype=np.float32)).reshape(-1, 2) for p in points
            ]
        if scores is not None:
            refs.scores = torch.as_tensor(list(scores), dtype=torch.float32)
        refs.set_metainfo({"parse_failures": 0})
        return refs

    @classmethod
    def empty(cls, parse_failures: int = 0, parse_repairs: int = 0) -> RefTargets:
        refs = cls.build(torch.zeros(0, 4))
        refs.set_metainfo({"parse_failures": parse_failures, "parse_repairs": parse_repairs})
        return refs

    @classmethod
    def from_masks(
        cls, masks: Sequence[np.ndarray], where: str = "RefTargets", **fields
    ) -> RefTargets:
        """Referents whose boxes are the tight boxes of non-empty ``masks``."""
        boxes = []
        for i, m in enumerate(masks):
            box = mask_to_box(m)
            if box is None:
                raise ValueError(f"{where}[{i}]: empty mask")
            boxes.append(box)
        return cls.build(boxes, masks=np.stack(masks) if masks else None, where=where, **fields)

    def fit_to_image(self, height: int, width: int) -> RefTargets:
        """These referents as an answer about a ``height x width`` image can
        hold them: boxes (and points) clipped to the image — each clipped row
        counted in metainfo ``parse_repairs`` — and rows whose box is not
        finite, or has no area left inside the image, dropped and counted in
        ``parse_failures``. The one place every codec's decoded geometry
        passes through (``GroundingMLLM.predict``)."""
        if not len(self):
            return self
        limit = torch.tensor([width, height, width, height], dtype=self.boxes.dtype)
        finite = torch.isfinite(self.boxes).all(-1)
        clipped = torch.minimum(self.boxes.nan_to_num(0.0, 0.0, 0.0).clamp(min=0), limit)
        keep = finite & (clipped[:, 2:] > clipped[:, :2]).all(-1)
        repaired = int((keep & (clipped != self.boxes).any(-1)).sum())
        out = self[keep.nonzero().flatten()] if not bool(keep.all()) else self.clone()
        out.boxes = clipped[keep]
        if "points" in out:
            out.points = [torch.minimum(p.clamp(min=0), limit[:2]).to(p.dtype) for p in out.points]
        meta = dict(self.metainfo_items())
        out.set_metainfo(
            {
                "parse_failures": meta.get("parse_failures", 0) + int((~keep).sum()),
                "parse_repairs": meta.get("parse_repairs", 0) + repaired,
            }
        )
        return out

    @property
    def num_groups(self) -> int:
        return int(self.group_ids.max()) + 1 if len(self) else 0

    def __len__(self) -> int:
        # InstanceData's own lists every field to measure the first; every
        # RefTargets has boxes (one set before them is not length-checked)
        return len(self.boxes) if "boxes" in self._data_fields else 0

    def group(self, gid: int) -> RefTargets:
        """Rows of referent group ``gid`` (possibly none: a no-target referent),
        copied. Processors, codecs and losses ask for every sample's groups at
        every step: tensor and list fields are gathered here directly, several
        times faster than ``InstanceData`` indexing by a mask."""
        rows = [i for i, g in enumerate(self.group_ids.tolist()) if g == gid]
        index = torch.tensor(rows, dtype=torch.long)
        fields = dict(self.items())
        if not all(isinstance(v, torch.Tensor | list) for v in fields.values()):
            return self[index]
        out = type(self)(metainfo=dict(self.metainfo_items()))
        out.set_data(
            {
                k: v.index_select(0, index) if isinstance(v, torch.Tensor) else [v[i] for i in rows]
                for k, v in fields.items()
            }
        )
        return out


@dataclass(frozen=True)
class CodecState:
    """Base of what a codec's ``prepare`` computes for one sample and its
    processor reads back (:attr:`GroundingDataSample.codec_state`): each codec
    subclasses it with a frozen dataclass of its own fields. Frozen, so clones
    of a sample may share it."""

    @classmethod
    def get(cls: type[_State], sample: GroundingDataSample | Mapping) -> _State | None:
        """The state of ``sample`` — a sample or its ``to_dict()`` (what
        metrics receive) — if it is a ``cls``; ``None`` before this codec's
        ``prepare`` (another codec's state, from a sample shared between
        models, is none of this codec's either)."""
        state = sample.get("codec_state")
        return state if isinstance(state, cls) else None

    @classmethod
    def of(cls: type[_State], sample: GroundingDataSample | Mapping) -> _State:
        """:meth:`get`, for readers that cannot do without the state: raises
        naming the sample when its codec's ``prepare`` never set one."""
        state = cls.get(sample)
        if state is None:
            other = sample.get("codec_state")
            found = "none" if other is None else f"a {type(other).__name__}"
            raise ValueError(
                f"sample {sample.get('sample_id', '?')}: needs the {cls.__name__} codec state "
                f"that the prepare of {cls.__module__} sets; it has {found}"
            )
        return state


class GroundingDataSample(BaseDataElement):
    """One training / evaluation example.

    Data fields: ``gt_refs`` and ``prompt_refs`` (:class:`RefTargets`),
    ``pred_refs`` (after prediction), ``conversation`` (list of
    ``{"role": "user"|"assistant", "text": str}``), ``image`` (``(3, S, S)`` uint8
    tensor once loaded), ``codec_state`` (a :class:`CodecState`: set by the
    codec's ``prepare``, read by its processor; ``None`` before ``prepare``).
    Metainfo: ``sample_id``, ``image_path``, ``ori_shape``, ``img_shape``,
    ``frame`` (:class:`Frame`), ``task``, ``dataset``, ``expression``.
    """

    # A class default rather than a field set at construction: an unprepared
    # sample reads None, yet its keys, to_dict() and clones stay as they were.
    codec_state: CodecState | None = None
