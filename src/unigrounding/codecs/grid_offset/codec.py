"""The ``grid_offset`` processor and codec: GETok's propose-then-refine.

Rendering (model-input frame, :class:`~.lattice.GridLattice`): a point is the
grid token of its cell; a box two tokens, its top-left and bottom-right
corners; a mask its segment-critical cells (:mod:`.points`); a scribble its
ordered cells (consecutive repeats dropped). Instances of one referent are
joined with ``;``. A grid token is read back as its cell centre.

Inference runs in two passes (paper Sec. 3, Appendix C.2): the model answers
with grid tokens; with ``refine=True`` it is then asked again, in a new
conversation holding the question and its own grid tokens
(:data:`REFINE_TEMPLATE`, the serialization of Algorithm 1), and answers one
offset token or ``<delete>`` per grid token. Moves are applied on the offset
lattice; deleted points are dropped (a deleted box corner — or every point of
an instance — keeps the proposal). Masks come from the points through a
point-to-mask decoder (``decoders["point_to_mask"]``), so the decoder can be
swapped without retraining.

``parse_repairs`` counts the parts of an answer read only after a repair: an
instance once, however many of its tokens were repaired — offset tokens or
``<delete>`` in the grid answer dropped; in the refinement answer a missing
move or an unreadable offset token read as "stay", or one box corner deleted
while the other moves (the proposal stands) — plus one for each ``;``-part of
the grid answer holding only offset tokens, and one for offset tokens beyond
the last grid token. Every point of an instance deleted is no repair: it is
what Algorithm 1 teaches for a box no corner moves can fix
(:func:`.offsets.box_corner_refinement`), and the proposal stands by design.
A repaired instance that is then unreadable counts as a failure only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import nn

from ...data.tasks import TASK_UNITS
from ...layers.position import sincos_2d
from ...registry import CODECS
from ...structures import GroundingDataSample, RefTargets
from ..base import Codec, ModelView, Processor
from .lattice import DELETE, MOVES, GridLattice, offset_token
from .offsets import best_corner_moves, refinement_targets
from .points import segment_critical_cells

#: The second-pass user turn: the original question, then the proposal.
REFINE_TEMPLATE = "{question}\nRefine: {proposal}"
_TOKEN = re.compile(r"<[^<>\s]*>")


@dataclass
class Instance:
    """One instance of an answer: its grid cells, their points (input frame),
    the text before it, its unit and whether reading it took a repair."""

    cells: np.ndarray
    xy: np.ndarray
    phrase: str
    unit: str
    repaired: bool = False


@CODECS.register_module()
class GridOffsetProcessor(Processor):
    """Args:
    n: grid size (cells per side); m: offset size (steps per side).
    mask_min_gain / mask_max_points: :func:`segment_critical_cells` stopping rule.
    """

    def __init__(
        self, n: int = 32, m: int = 64, mask_min_gain: float = 1.0, mask_max_points: int = 32
    ) -> None:
        self.lattice = GridLattice(n, m)
        self.mask_min_gain, self.mask_max_points = mask_min_gain, mask_max_points
        self.special_tokens = self.lattice.tokens()

    # ------------------------------------------------------------------ encode
    def cells(self, refs: RefTargets, i: int, sample: GroundingDataSample) -> np.ndarray:
        """``(K, 2)`` grid cells that stand for instance ``i`` of ``refs``."""
        frame, hw = sample.frame, sample.frame.input_hw
        unit = refs.units[i]
        if unit == "mask" and "masks" in refs:
            mask = frame.mask_to_input(refs.masks[i]).numpy()
            cells = segment_critical_cells(
                mask, self.lattice, self.mask_min_gain, self.mask_max_points
            )
            if len(cells):
                return cells
        if unit in ("point", "scribble", "keypoint") and "points" in refs:
            cells = self.lattice.cell_of(frame.points_to_input(refs.points[i].numpy()), hw)
            if len(cells):
                keep = np.r_[True, (np.diff(cells, axis=0) != 0).any(1)]
                return cells[keep]
        box = frame.boxes_to_input(refs.boxes[i].numpy())[0]
        return self.lattice.cell_of(box.reshape(2, 2), hw)

    def encode(self, refs: RefTargets, sample: GroundingDataSample, role: str) -> str:
        return ";".join(
            self.lattice.grid_tokens(self.cells(refs, i, sample)) for i in range(len(refs))
        )

    # ------------------------------------------------------------------- parse
    def read(self, text: str, sample: GroundingDataSample) -> tuple[list[Instance], int, int]:
        """The instances of an answer (``;``-separated), the count of
        unreadable parts (malformed or off-lattice grid tokens, boxes that are
        not exactly two tokens) and the count of parts holding only offset
        tokens. Offset tokens and ``<delete>`` are dropped: an instance that
        held any is ``repaired``. The unit is the one the sample's task asks
        for; without a task: one token is a point, two a box, more a mask."""
        hw = sample.frame.input_hw
        unit = TASK_UNITS.get(sample.metainfo.get("task"))
        instances, failures, repairs = [], 0, 0
        for chunk in text.split(";"):
            cells, grids, stray = [], 0, False
            for tok in _TOKEN.findall(chunk):
                if tok.startswith("<grid"):
                    grids += 1
                    cell = self.lattice.read_grid(tok)
                    failures += cell is None
                    if cell is not None:
                        cells.append(cell)
                elif tok == DELETE or tok.startswith("<off"):
                    stray = True  # the refinement's vocabulary: nothing to refine yet
            if not cells:
                repairs += stray and not grids  # with grid tokens, the part failed instead
                continue
            kind = unit or {1: "point", 2: "box"}.get(len(cells), "mask")
            if kind == "box" and len(cells) != 2:
                failures += 1
                continue
            cells = np.array(cells, dtype=int)
            phrase = chunk[: chunk.find("<grid")].strip(" ,.;:")
            xy = self.lattice.centre(cells, hw)
            instances.append(Instance(cells, xy, phrase, kind, repaired=stray))
        return instances, failures, repairs

    def parse(self, text: str, sample: GroundingDataSample) -> RefTargets:
        instances, failures, repairs = self.read(text, sample)
        return self.geometry(instances, sample, failures, repairs)

    def geometry(
        self,
        instances: list[Instance],
        sample: GroundingDataSample,
        failures: int = 0,
        repairs: int = 0,
    ) -> RefTargets:
        """RefTargets (original pixels) from instances' input-frame points. A box
        is its two corners (sorted); other units keep their points and get their
        bounding box padded by half a grid cell. ``parse_repairs`` is
        ``repairs`` plus the ``repaired`` instances that are read."""
        frame, hw = sample.frame, sample.frame.input_hw
        half = self.lattice.cell_size(hw) / 2
        boxes, phrases, units, points = [], [], [], []
        for inst in instances:
            xy, phrase, unit = inst.xy, inst.phrase, inst.unit
            if unit == "box":
                box = np.r_[np.minimum(xy[0], xy[1]), np.maximum(xy[0], xy[1])]
            else:
                box = np.r_[xy.min(0) - half, xy.max(0) + half]
            if box[2] <= box[0] or box[3] <= box[1]:
                failures += 1
                continue
            box = frame.boxes_to_original(box)[0].clip(0, np.tile(sample.ori_shape[::-1], 2))
            if box[2] <= box[0] or box[3] <= box[1]:  # entirely in the padding
                failures += 1
                continue
            repairs += inst.repaired
            boxes.append(box)
            phrases.append(phrase)
            units.append(unit)
            points.append(frame.points_to_original(xy))
        if not boxes:
            return RefTargets.empty(parse_failures=failures, parse_repairs=repairs)
        refs = RefTargets.build(boxes, phrases=phrases, units=units, points=points)
        refs.set_metainfo({"parse_failures": failures, "parse_repairs": repairs})
        return refs


@CODECS.register_module(name="grid_offset")
class GridOffsetCodec(Codec):
    """Grid/offset tokens are vocabulary; refinement is a second generation pass.

    Args:
        n, m: grid and offset sizes (paper defaults 32 and 64).
        refine: run the offset pass at inference (grid-only when ``False``).
        mask_decoder: name of the point-to-mask decoder in the model's
            ``decoders`` (masks are left out when the model has none).
    """

    kind = "vocab"
    units = ("box", "mask", "point")
    min_roundtrip_iou = 0.7  # grid-only: a box corner is off by up to half a cell
    eval_variants = {"grid only": {"refine": False}}

    def __init__(
        self,
        n: int = 32,
        m: int = 64,
        refine: bool = True,
        mask_decoder: str = "point_to_mask",
        mask_min_gain: float = 1.0,
        mask_max_points: int = 32,
    ) -> None:
        super().__init__(GridOffsetProcessor(n, m, mask_min_gain, mask_max_points))
        self.refine, self.mask_decoder_name = refine, mask_decoder
        self.mask_decoder = None

    def bind(self, tokenizer, hidden_size, decoders=None, proposers=None) -> None:
        super().bind(tokenizer, hidden_size, decoders, proposers)
        if decoders is not None and self.mask_decoder_name in decoders:
            self.mask_decoder = decoders[self.mask_decoder_name]

    def init_token_embeddings(self, embeddings: nn.Embedding) -> None:
        """Grid tokens start from a 2-D sin-cos code of their cell (neighbouring
        cells start close: the 2-D topology the paper credits grid tokens with),
        offset tokens from the same code of their move; both scaled to the RMS of
        the existing embeddings. ``<delete>`` keeps its random initialisation."""
        lattice = self.processor.lattice
        weight = embeddings.weight
        with torch.no_grad():
            rms = weight.float().pow(2).mean().sqrt()
            dim = weight.shape[1] - weight.shape[1] % 4
            grid = sincos_2d(lattice.n, lattice.n, dim)  # row-major (j, i)
            moves = sincos_2d(3, 3, dim)  # (dv + 1, du + 1)
            for j in range(lattice.n):
                for i in range(lattice.n):
                    self._set(weight, lattice.grid_token(i, j), grid[j * lattice.n + i], rms)
            for du, dv in MOVES:
                self._set(weight, offset_token(du, dv), moves[(dv + 1) * 3 + du + 1], rms)

    def _set(self, weight: torch.Tensor, token: str, code: torch.Tensor, rms: torch.Tensor):
        row = self.tokenizer.convert_tokens_to_ids(token)
        vec = torch.zeros(weight.shape[1])
        vec[: len(code)] = code * rms / code.pow(2).mean().sqrt()
        weight[row] = vec.to(weight)

    # ------------------------------------------------------------------ decode
    def decode(self, view: ModelView) -> list[RefTargets]:
        proc = self.processor
        proposals = [proc.read(t, s) for t, s in zip(view.texts, view.samples, strict=True)]
        second: dict[int, str] = {}
        todo = [k for k, (inst, *_) in enumerate(proposals) if inst]
        if self.refine and view.generate is not None and todo:
            asks = [
                REFINE_TEMPLATE.format(
                    question=view.samples[k].conversation[0]["text"],
                    proposal=";".join(proc.lattice.grid_tokens(i.cells) for i in proposals[k][0]),
                )
                for k in todo
            ]
            # the second pass may only move or delete (GETok's refinement
            # vocabulary): unconstrained, a briefly trained model re-answers
            # the question with grid tokens (seen in the quick ablation)
            answers = view.generate(
                asks,
                new_conversation=True,
                rows=todo,
                allowed_tokens=[*(offset_token(*m) for m in MOVES), DELETE],
            )
            second = dict(zip(todo, answers.texts, strict=True))
        out = []
        for k, (instances, failures, repairs) in enumerate(proposals):
            sample = view.samples[k]
            if k in second:
                moves, used = self._moves(second[k]), 0
                refined = []
                for inst in instances:
                    mine = moves[used : used + len(inst.cells)]
                    used += len(inst.cells)
                    xy, repaired = self._refined_points(inst, mine, sample)
                    refined.append(replace(inst, xy=xy, repaired=inst.repaired or repaired))
                instances = refined
                repairs += len(moves) > used  # moves for no grid token: ignored
            out.append(self._masks(proc.geometry(instances, sample, failures, repairs), view, k))
        return out

    def oracle_follow_up(self, sample: GroundingDataSample, answer: str, ask: str) -> str | None:
        """Ideal offsets for the encoded ground truth: per box the best corner
        pair (:func:`best_corner_moves`), per mask point Algorithm 1's target,
        per point the move nearest to it. ``None`` when ``refine`` is off."""
        if not self.refine:
            return None
        proc, hw = self.processor, sample.frame.input_hw
        target = sample.gt_refs.group(0)
        tokens = []
        for k, inst in enumerate(proc.read(answer, sample)[0]):
            if k >= len(target):
                tokens += [offset_token(0, 0)] * len(inst.cells)
            elif inst.unit == "box":
                box = sample.frame.boxes_to_input(target.boxes[k].numpy())[0]
                moves, _ = best_corner_moves(inst.cells, box, hw, proc.lattice)
                tokens += [offset_token(*m) for m in moves]
            elif inst.unit == "mask" and "masks" in target:
                mask = sample.frame.mask_to_input(target.masks[k]).numpy()
                tokens += refinement_targets(mask, inst.xy, proc.lattice)
            else:
                goal = sample.frame.points_to_input(target.points[k].numpy())
                for xy, g in zip(inst.xy, goal, strict=False):
                    moved = proc.lattice.move(np.tile(xy, (len(MOVES), 1)), np.array(MOVES), hw)
                    tokens.append(
                        offset_token(*MOVES[int(np.linalg.norm(moved - g, axis=1).argmin())])
                    )
        return "".join(tokens)

    def _moves(self, text: str) -> list[tuple[int, int] | None | str]:
        """Offset tokens in order: a move, ``None`` for ``<delete>``, the token
        itself when it is no move (:meth:`_refined_points` reads it as "stay")."""
        moves = []
        for tok in _TOKEN.findall(text):
            if tok == DELETE:
                moves.append(None)
            elif tok.startswith("<off"):
                moves.append(self.processor.lattice.read_offset(tok) or tok)
        return moves

    def _refined_points(
        self, inst: Instance, moves: list, sample: GroundingDataSample
    ) -> tuple[np.ndarray, bool]:
        """The instance's points after its moves, and whether that took a
        repair: a missing or unreadable move (read as "stay"), or a deleted
        box corner while the other moves (the proposal stands)."""
        repaired = len(moves) < len(inst.xy) or any(isinstance(m, str) for m in moves)
        moves = [(0, 0) if isinstance(m, str) else m for m in moves]
        moves += [(0, 0)] * (len(inst.xy) - len(moves))
        keep = [m is not None for m in moves]
        if not any(keep):
            return inst.xy, repaired  # all deleted (a trained answer): the proposal stands
        if inst.unit == "box" and not all(keep):
            return inst.xy, True  # a box needs both corners: the proposal stands
        steps = np.array([m for m in moves if m is not None])
        moved = self.processor.lattice.move(inst.xy[keep], steps, sample.frame.input_hw)
        return moved, repaired

    def _masks(self, refs: RefTargets, view: ModelView, row: int) -> RefTargets:
        if self.mask_decoder is None or view.images is None or "mask" not in refs.units:
            return refs  # no decoder, or no pixels (a roundtrip): points and boxes only
        sample = view.samples[row]
        masks = []
        for i in range(len(refs)):
            if refs.units[i] != "mask":
                masks.append(np.zeros(sample.ori_shape, dtype=bool))
                continue
            xy = sample.frame.points_to_input(refs.points[i].numpy())
            mask = self.mask_decoder(view.input_image(row), xy)
            masks.append(sample.frame.mask_to_original(mask).numpy())
        refs.masks = torch.as_tensor(np.stack(masks))
        return refs
