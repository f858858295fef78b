"""``token_collective``: ClawMachine's token collectives
(ClawMachine [docs/papers.md], section 2.1 and Appendix A.6).

A visual tokenizer (:class:`~.quantizer.VisualQuantizer`,
trained in its own stage and frozen here, as ClawMachine keeps LaVIT's) turns
every patch of the tower's token map into a code ``<vis_k>``: ordinary LLM
vocabulary with trainable embeddings. A region *is* the codes of the patches
it covers, raster-ordered (V-L mounting, :mod:`.mounting`):

* referring: ``... this <ref> region <boi><vis_12><vis_40><eoi>``
* grounding: ``Here is <ref> the red circle <boi><vis_12><vis_40><eoi>``,
  one ``<boi>...<eoi>`` per instance.

Hybrid perception: the image enters twice, ``<boi>`` continuous projected
patches ``<eoi> <boi>`` the image's codes ``<eoi>`` (``perception="hybrid"``);
``"continuous"`` keeps only the first block, ``"discrete"`` only the second
(the paper's Table 9 ablation).

Codes depend on the image, so the processor writes deferred markers
(``<tc_target>``, ``<tc_prompt>``) that :meth:`TokenCollectiveCodec.prepare`
replaces by the mounted codes once the quantizer has seen the image; the
image blocks are built there too, around the model's image tokens, wherever
the model placed them. ``prepare`` leaves each sample's codes in its
``codec_state`` (:class:`ImageCodes`), for the processor and the metric; a
sample prepared before is encoded with its codes directly.

Generated collectives become boxes through the region sampler
(:mod:`.sampler`), with the frozen class-agnostic proposer of ``region_proxy``
(Groma's Deformable-DETR head, trained in its detection stage) or without one
(``proposer=None``, or the ``no proposer`` evaluation variant). Masks are the
convex hull of a collective's patches (cut to the nominated proposal), or a
point-to-mask decoder's mask from the cluster centre when the model has one
(the paper's Figure 9: SAM prompted with the points' clustered centre).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ...registry import CODECS
from ...structures import IMAGE, GroundingDataSample, RefTargets
from ...structures.sample import CodecState
from ..base import Codec, ModelView, Processor, group_phrase, rewrite_tokens
from .mounting import PatchLattice
from .quantizer import VisualQuantizer
from .sampler import RegionSampler, SampledRegion, hull_mask

REF, BOI, EOI = "<ref>", "<boi>", "<eoi>"
TARGET, PROMPT = "<tc_target>", "<tc_prompt>"
PERCEPTIONS = ("hybrid", "continuous", "discrete")
_TOKEN = re.compile(r"<ref>|<boi>|<eoi>|<vis_(\d+)>")
_CODE = re.compile(r"<vis_\d+>")


def code_token(k: int) -> str:
    return f"<vis_{k}>"


@dataclass(frozen=True)
class ImageCodes(CodecState):
    """What :meth:`TokenCollectiveCodec.prepare` records of one sample.

    Fields: ``codes``, the image's code per patch of ``lattice`` (raster
    order); ``gt_cells``, the patches of the first target group (eq. (1)'s
    ``G_gt``, for :class:`~.metrics.TokenCollectiveMetric`), sorted;
    ``proposal_boxes`` (model-input xyxy) and ``proposal_scores``, the
    proposals the region sampler nominates boxes from — ``None`` when
    training (which never decodes) or without a proposer.
    """

    codes: tuple[int, ...]
    lattice: PatchLattice
    gt_cells: tuple[int, ...]
    proposal_boxes: tuple[tuple[float, ...], ...] | None = None
    proposal_scores: tuple[float, ...] | None = None

    def proposals(self) -> tuple[np.ndarray | None, np.ndarray | None]:
        """``(P, 4)`` boxes and ``(P,)`` scores as the sampler takes them."""
        if self.proposal_boxes is None:
            return None, None
        boxes = np.asarray(self.proposal_boxes, dtype=np.float64).reshape(-1, 4)
        return boxes, np.asarray(self.proposal_scores, dtype=np.float64)


def mount(refs: RefTargets, row: int, sample: GroundingDataSample, lattice: PatchLattice):
    """The patches of instance ``row`` (raster order): a mask or a point /
    scribble by what it covers, anything else by its box."""
    unit, frame = refs.units[row], sample.frame
    if unit == "mask" and "masks" in refs and bool(refs.masks[row].any()):
        return lattice.cells_in_mask(frame.mask_to_input(refs.masks[row]).numpy())
    if unit in ("point", "scribble") and "points" in refs and len(refs.points[row]):
        return lattice.cells_at_points(frame.points_to_input(refs.points[row].numpy()))
    return lattice.cells_in_box(frame.boxes_to_input(refs.boxes[row].numpy())[0])


@CODECS.register_module()
class TokenCollectiveProcessor(Processor):
    """ClawMachine's syntax; :meth:`parse` runs the region sampler on the
    image codes and proposals ``prepare`` left in the sample's
    :class:`ImageCodes`.

    Args:
        codebook_size: number of ``<vis_k>`` tokens (the quantizer's codes).
        sampler: :class:`RegionSampler` settings.
    """

    words = ("region",)

    def __init__(self, codebook_size: int = 16384, sampler: dict | None = None) -> None:
        self.codebook_size = codebook_size
        self.sampler = RegionSampler(**(sampler or {}))
        self.special_tokens = (
            *(code_token(k) for k in range(codebook_size)),
            REF,
            BOI,
            EOI,
            TARGET,
            PROMPT,
        )

    def encode(self, refs: RefTargets, sample: GroundingDataSample, role: str) -> str:
        if role == "prompt":
            blocks = (self._block(refs, i, sample, PROMPT) for i in range(len(refs)))
            return ", ".join(f"{REF} region {b}" for b in blocks)
        blocks = " ".join(self._block(refs, i, sample, TARGET) for i in range(len(refs)))
        return f"{REF} {group_phrase(refs)} {blocks or BOI + EOI}"

    def _block(self, refs: RefTargets, row: int, sample: GroundingDataSample, marker: str) -> str:
        state = ImageCodes.get(sample)
        if state is None:  # codes unknown: prepare resolves the marker
            return BOI + marker + EOI
        cells = mount(refs, row, sample, state.lattice)
        return BOI + "".join(code_token(state.codes[c]) for c in cells) + EOI

    # ------------------------------------------------------------------ reading
    def read(
        self,
        text: str,
        sample: GroundingDataSample,
        alternatives: Sequence[Sequence[int]] | None = None,
    ) -> tuple[list[tuple[str, int, SampledRegion]], int, int]:
        """``(phrase, group, region)`` per ``<boi>...<eoi>`` block, the
        number of failures — codes outside any block, blocks whose codes the
        image cannot place, and every block when the sample has no codes —
        and of repairs: placed blocks never closed by ``<eoi>`` (ended by the
        next ``<boi>`` or ``<ref>``, or by the end of the answer).
        ``alternatives``: the top-k codes of each ``<vis_k>`` of ``text`` in
        order (the generation's logits), for the fuzzy search."""
        blocks, stray, phrase, group = [], 0, "", -1
        open_block, pending, code_index = None, "", 0
        last = 0
        for m in _TOKEN.finditer(text):
            between = text[last : m.start()]
            last = m.end()
            token = m.group(0)
            if open_block is None:
                pending += between
            if token in (REF, BOI) and open_block is not None:
                open_block["unclosed"] = True
            if token == REF:
                group, pending, open_block = group + 1, "", None
            elif token == BOI:
                if open_block is None:
                    phrase = " ".join(pending.split()) or phrase
                    pending = ""
                open_block = {
                    "phrase": phrase,
                    "group": max(group, 0),
                    "codes": [],
                    "alts": [],
                    "unclosed": False,
                }
                blocks.append(open_block)
            elif token == EOI:
                open_block = None
            else:
                code = int(m.group(1))
                alt = list(alternatives[code_index]) if alternatives is not None else None
                code_index += 1
                if open_block is None:
                    stray += 1
                else:  # a code beyond the vocabulary (-1) is in no image
                    open_block["codes"].append(code if code < self.codebook_size else -1)
                    open_block["alts"].append(alt or [])
        if open_block is not None:
            open_block["unclosed"] = True  # the answer ends inside it (cut short)
        blocks = [b for b in blocks if b["codes"]]  # <boi><eoi>: explicitly nothing
        if not blocks:
            return [], stray, 0
        state = ImageCodes.get(sample)
        if state is None:  # an unprepared sample has no image to place codes in
            return [], stray + len(blocks), 0
        regions = self.sampler.sample(
            [b["codes"] for b in blocks],
            np.asarray(state.codes),
            state.lattice,
            *state.proposals(),
            alternatives=[b["alts"] for b in blocks] if alternatives is not None else None,
        )
        found = [(b["phrase"], b["group"], r) for b, r in zip(blocks, regions, strict=True)]
        failures = stray + sum(r.box is None for _, _, r in found)
        repairs = sum(
            b["unclosed"] and r.box is not None for b, r in zip(blocks, regions, strict=True)
        )
        return [f for f in found if f[2].box is not None], failures, repairs

    def geometry(
        self, found: list[tuple[str, int, SampledRegion]], failures: int, sample, repairs: int = 0
    ) -> RefTargets:
        """Original-image referents of :meth:`read`'s output: boxes, the
        points behind them and convex-hull masks. Metainfo keeps the exact
        retrieval (``collective_cells``, ``collective_unplaced``) for eq. (1)."""
        if not found:
            return RefTargets.empty(parse_failures=failures, parse_repairs=repairs)
        frame, lattice = sample.frame, ImageCodes.of(sample).lattice
        boxes = frame.boxes_to_original(np.stack([r.box for _, _, r in found]))
        masks = [
            frame.mask_to_original(
                hull_mask(lattice.cell_of(r.points), lattice, frame.input_hw, r.box)
            ).numpy()
            for _, _, r in found
        ]
        refs = RefTargets.build(
            boxes,
            phrases=[p for p, _, _ in found],
            group_ids=[g for _, g, _ in found],
            masks=np.stack(masks),
            points=[frame.points_to_original(r.points) for _, _, r in found],
            where="token_collective",
        )
        refs.set_metainfo(
            {
                "parse_failures": failures,
                "parse_repairs": repairs,
                "collective_cells": [r.cells for _, _, r in found],
                "collective_unplaced": [r.unplaced for _, _, r in found],
            }
        )
        return refs

    def parse(self, text: str, sample: GroundingDataSample) -> RefTargets:
        found, failures, repairs = self.read(text, sample)
        return self.geometry(found, failures, sample, repairs)


def _mounted_ids(
    refs: RefTargets, row: int, sample: GroundingDataSample, lattice: PatchLattice, code_ids
) -> list[int]:
    """Token ids of instance ``row``'s collective, ``code_ids`` being the
    image's code token per patch."""
    return [code_ids[c] for c in mount(refs, row, sample, lattice)]


@CODECS.register_module(name="token_collective")
class TokenCollectiveCodec(Codec):
    """Token collectives over a joint vision-language vocabulary (ClawMachine).

    Args:
        codebook_size / code_dim / commitment: the quantizer (ClawMachine /
            LaVIT: 16384 codes of width 32); its weights come from the
            tokenizer stage (``QuantizerPretrainer``, parameter names
            ``codec.quantizer.*``) and stay frozen.
        perception: ``"hybrid"`` / ``"continuous"`` / ``"discrete"`` image input.
        proposer: the model's proposer the sampler nominates boxes from
            (``None``: proposer-free, boxes are the points' convex boxes).
        sampler: :class:`RegionSampler` settings (score threshold 0.3,
            overlap 0.1).
        fuzzy_topk: alternatives per generated code for the fuzzy search
            (the paper: top-3; 0 switches it off).
        mask_decoder: name of a point-to-mask decoder in the model's
            ``decoders``, prompted with each collective's cluster centre
            (convex-hull masks when the model has none).
    """

    kind = "vocab"
    units = ("box", "mask")
    needs = frozenset({"vision_tokens", "generated_logits", "proposals"})  # per instance: proposer
    # With ground-truth mounting the box is the nominated proposal's, or the
    # convex box of the patches: a patch overshoots an object edge by up to a
    # stride. The conformance suite checks what an untrained tower and
    # proposer give; the trained figures are in docs/measurements.md.
    min_roundtrip_iou = 0.2
    eval_variants = {"no proposer": {"use_proposals": False}}
    default_proposers = {"proposer": {"type": "DeformableDetrProposer"}}

    def __init__(
        self,
        codebook_size: int = 16384,
        code_dim: int = 32,
        commitment: float = 0.25,
        perception: str = "hybrid",
        proposer: str | None = "proposer",
        sampler: dict | None = None,
        fuzzy_topk: int = 3,
        mask_decoder: str = "point_to_mask",
    ) -> None:
        if perception not in PERCEPTIONS:
            raise ValueError(f"perception must be one of {PERCEPTIONS}, got {perception!r}")
        super().__init__(TokenCollectiveProcessor(codebook_size, sampler))
        self.quantizer_args = dict(
            codebook_size=codebook_size, code_dim=code_dim, commitment=commitment
        )
        self.perception, self.proposer_name, self.fuzzy_topk = perception, proposer, fuzzy_topk
        self.mask_decoder_name, self.mask_decoder = mask_decoder, None
        self.needs = frozenset(
            {"vision_tokens", "generated_logits"} | ({"proposals"} if proposer else set())
        )
        self.default_proposers = {proposer: {"type": "DeformableDetrProposer"}} if proposer else {}

    @property
    def use_proposals(self) -> bool:
        return self.processor.sampler.use_proposals

    @use_proposals.setter
    def use_proposals(self, value: bool) -> None:
        self.processor.sampler.use_proposals = value

    def attach_vision(self, token_channels: int) -> None:
        self.quantizer = VisualQuantizer(token_channels, **self.quantizer_args).requires_grad_(
            False
        )

    def bind(self, tokenizer, hidden_size, decoders=None, proposers=None) -> None:
        super().bind(tokenizer, hidden_size, decoders, proposers)
        if self.proposer_name and (proposers is None or self.proposer_name not in proposers):
            raise ValueError(
                f"token_collective needs the proposer {self.proposer_name!r} (or proposer=None); "
                f"the model has {sorted(proposers or {})}"
            )
        if decoders is not None and self.mask_decoder_name in decoders:
            self.mask_decoder = decoders[self.mask_decoder_name]
        ids = tokenizer.convert_tokens_to_ids
        self.code_ids = torch.tensor(
            [ids(code_token(k)) for k in range(self.processor.codebook_size)], dtype=torch.long
        )
        self.boi_id, self.eoi_id = ids(BOI), ids(EOI)
        self.target_id, self.prompt_id = ids(TARGET), ids(PROMPT)

        self.image_id = ids(IMAGE)
        self.is_code = torch.zeros(len(tokenizer), dtype=torch.bool)
        self.is_code[self.code_ids] = True

    # ------------------------------------------------------------------ prepare
    def prepare(self, view: ModelView) -> None:
        """Codes of every image, the image blocks of the chosen perception,
        and the deferred collectives replaced by their mounted codes."""
        tokens = view.vision_tokens
        _, _, rows, cols = tokens.shape
        canvas_codes = self.quantizer.encode(tokens.flatten(2).transpose(1, 2).float()).cpu()
        stride = view.canvas_hw[1] / cols
        # each image's own patches: the top left of the canvas's
        lattices = [
            PatchLattice(int(h // stride), int(w // stride), stride)
            for h, w in (s.frame.input_hw for s in view.samples)
        ]
        codes = [
            canvas_codes[b].view(rows, cols)[: lat.rows, : lat.cols].flatten()
            for b, lat in enumerate(lattices)
        ]
        # the sampler reads proposals to decode; training never asks for them
        training = view.labels is not None
        proposals = (
            view.proposals[self.proposer_name] if self.proposer_name and not training else None
        )
        replacements = []
        for b, (sample, rendered) in enumerate(zip(view.samples, view.rendered, strict=True)):
            lattice = lattices[b]
            target = sample.gt_refs.group(0)  # the eq. (1) reference
            gt_cells = {
                int(c) for i in range(len(target)) for c in mount(target, i, sample, lattice)
            }
            boxes = scores = None
            if proposals is not None:
                boxes = tuple(map(tuple, proposals[b].bboxes.detach().float().cpu().tolist()))
                scores = tuple(proposals[b].scores.detach().float().cpu().tolist())
            sample.codec_state = ImageCodes(
                tuple(codes[b].tolist()), lattice, tuple(sorted(gt_cells)), boxes, scores
            )
            code_ids = self.code_ids[codes[b]].tolist()
            targets = [
                _mounted_ids(refs, i, sample, lattice, code_ids)
                for refs in (sample.gt_refs.group(g) for g in rendered.side["target_groups"])
                for i in range(len(refs))
            ]
            prompts = [
                _mounted_ids(sample.prompt_refs.group(g), r, sample, lattice, code_ids)
                for g, r in rendered.side["prompt_rows"]
            ]
            ids = view.input_ids[b][view.attention_mask[b].bool()].tolist()
            replacements.append(self._replacements(ids, code_ids, iter(targets), iter(prompts)))
        rewrite_tokens(view, replacements, self.tokenizer.pad_token_id)
        if self.perception == "discrete":
            view.image_positions = self._image_codes_mask(view, codes)

    def _image_codes_mask(self, view: ModelView, codes: list[torch.Tensor]) -> torch.Tensor:
        """Where each row's image block of code tokens sits (the discrete
        image takes the place of the image tokens)."""
        mask = torch.zeros_like(view.input_ids, dtype=torch.bool)
        for b in range(len(view.input_ids)):
            block = [self.boi_id, *self.code_ids[codes[b]].tolist(), self.eoi_id]
            row = view.input_ids[b].tolist()
            start = next(
                t for t in range(len(row) - len(block) + 1) if row[t : t + len(block)] == block
            )
            mask[b, start + 1 : start + len(block) - 1] = True
        return mask

    def _replacements(self, ids: list[int], code_ids: list[int], targets, prompts) -> dict:
        image = [t for t, token in enumerate(ids) if token == self.image_id]
        changes: dict[int, list[int]] = {}
        if image:
            discrete = [self.boi_id, *code_ids, self.eoi_id]
            first, last = image[0], image[-1]
            if self.perception == "discrete":
                changes.update({t: [] for t in image})
                changes[first] = discrete
            else:
                changes[first] = [self.boi_id, self.image_id]
                closing = [self.eoi_id] + (discrete if self.perception == "hybrid" else [])
                changes[last] = (changes[first] if first == last else [self.image_id]) + closing
        for t, token in enumerate(ids):
            if token == self.target_id:
                changes[t] = next(targets)
            elif token == self.prompt_id:
                changes[t] = next(prompts)
        return changes

    # ------------------------------------------------------------------ decode
    def decode(self, view: ModelView) -> list[RefTargets]:
        out = []
        for b, (text, sample) in enumerate(zip(view.texts, view.samples, strict=True)):
            alternatives = self._alternatives(view, b, text)
            found, failures, repairs = self.processor.read(text, sample, alternatives)
            refs = self.processor.geometry(found, failures, sample, repairs)
            out.append(self._decoder_masks(refs, found, view, b))
        return out

    def _alternatives(self, view: ModelView, row: int, text: str) -> list[list[int]] | None:
        """Top-``fuzzy_topk`` codes at each generated code token, in order
        (``None`` without logits, or if the text and the tokens disagree)."""
        if not self.fuzzy_topk or view.generated_logits is None or view.generated_ids is None:
            return None
        ids = view.generated_ids[row].cpu()
        eos = self.tokenizer.eos_token_id
        end = int((ids == eos).nonzero()[0]) if (ids == eos).any() else len(ids)
        steps = self.is_code[ids[:end]].nonzero().flatten()
        if len(steps) != len(_CODE.findall(text)):
            return None
        logits = view.generated_logits[row, steps.to(view.generated_logits.device)]
        k = min(self.fuzzy_topk, len(self.code_ids))
        return logits[:, self.code_ids.to(logits.device)].topk(k, dim=-1).indices.tolist()

    def _decoder_masks(self, refs: RefTargets, found, view: ModelView, row: int) -> RefTargets:
        """Masks from the point-to-mask decoder, prompted with each cluster centre."""
        if self.mask_decoder is None or view.images is None or not len(refs):
            return refs
        sample, image = view.samples[row], view.input_image(row)
        masks = [
            sample.frame.mask_to_original(self.mask_decoder(image, region.centre[None])).numpy()
            for _, _, region in found
        ]
        refs.masks = torch.as_tensor(np.stack(masks))
        return refs
