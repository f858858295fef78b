"""``trp``: REF-VLM's triplet-based referring paradigm.

Output: every referent is a phrase-unit-``<REF>`` triplet
(:mod:`.syntax`); the last-layer hidden state of each ``<REF>`` is routed to
the decoder of its unit (the *latent embeddings router*), padded to a fixed
number of queries per decoder, and decoded into a box / mask / keypoints.
Training matches predictions to targets with parallel grouped Hungarian
matching inside each triplet (:mod:`unigrounding.decoders.matching`), so the
padding never enters a loss. A decoder without queries in a batch still takes
part in every backward pass (REF-VLM appendix C.2: distributed training would
otherwise hang) through a zero loss on its parameters: the same zero gradients
as the paper's "fake" query, without running the decoder on it.

Input: a visual prompt is a run of ``[VPT]`` tokens per instance whose
embeddings are the parameter-free mask-guided aggregation of the tower's
features, sent through the shared projector (section 4.2,
:func:`mask_guided_aggregation`).

Decoders are looked up by name in the model's ``decoders`` (DESIGN.md section 3):
``unit_decoders`` maps a unit to a decoder name; a unit whose decoder the model
lacks is not decoded (its triplets are counted as parse failures).
"""

from __future__ import annotations

import re

import numpy as np
import torch
from torch import nn

from ...decoders.matching import float32_cost, grouped_hungarian, pad_groups
from ...registry import CODECS
from ...structures import SLOT_PATTERN, GroundingDataSample, RefTargets
from ..base import Codec, ModelView, Processor, Rendered, group_phrase
from ..visual_prompts import mask_guided_aggregation, region_mask
from .syntax import (
    REF,
    SPECIAL_TOKENS,
    VPT,
    WORDS,
    Triplet,
    parse_triplets,
    serialize_triplet,
    vd_cot,
)

#: Units a TRP answer may name, and the decoders that exist for them.
TRP_UNITS = ("box", "mask", "keypoint")


@CODECS.register_module()
class TrpProcessor(Processor):
    """Renders targets as TRP triplets (with the VD-CoT block when ``vd_cot``)
    and prompts as ``[VPT]`` tokens; :meth:`parse` reads the triplet structure
    (geometry comes from the decoders, so the returned ``RefTargets`` is empty
    and the triplets travel in its metainfo)."""

    special_tokens = SPECIAL_TOKENS
    words = WORDS

    def __init__(self, vd_cot: bool = True, vpt_tokens: int = 4) -> None:
        self.vd_cot, self.vpt_tokens = vd_cot, vpt_tokens

    def encode(self, refs: RefTargets, sample: GroundingDataSample, role: str) -> str:
        if role == "prompt":
            return " ".join([VPT * self.vpt_tokens] * len(refs))
        return serialize_triplet(group_phrase(refs), _units(refs), len(refs))

    def format(self, sample: GroundingDataSample) -> Rendered:
        rendered = super().format(sample)
        if self.vd_cot:
            for turn, raw in zip(rendered.turns, sample.conversation, strict=True):
                if turn["role"] != "assistant":
                    continue
                groups = [
                    sample.gt_refs.group(int(i))
                    for kind, i in re.findall(SLOT_PATTERN, raw["text"])
                    if kind == "target"
                ]
                cot = [(group_phrase(g), _units(g), len(g)) for g in groups]
                turn["text"] = vd_cot(cot) + " " + turn["text"]
        return rendered

    def parse(self, text: str, sample: GroundingDataSample) -> RefTargets:
        triplets, failures = parse_triplets(text, TRP_UNITS)
        refs = RefTargets.empty(parse_failures=failures)
        refs.set_metainfo({"triplets": triplets})
        return refs


def _units(refs: RefTargets) -> list[str]:
    units = [u for u in dict.fromkeys(refs.units) if u in TRP_UNITS] if len(refs) else []
    return units or ["box"]


@CODECS.register_module(name="trp")
class TrpCodec(Codec):
    """Latent codec: ``<REF>`` hidden states → unit decoders.

    Args:
        vd_cot: write the VD-CoT block before every answer.
        unit_decoders: unit → name of a decoder in the model's ``decoders``.
        queries_per_decoder: fixed query length per image for each decoder
            (REF-VLM pads to "a fixed length" without giving it); ``<REF>``s
            beyond it are not decoded (their triplet counts as repaired).
        loss_weights: unit → weight of its decoder loss next to the LM loss
            (REF-VLM: 0.5 for boxes and masks).
        vpt_blocks: a visual prompt becomes ``vpt_blocks**2`` ``[VPT]``
            embeddings, one per block of the feature grid (REF-VLM's blocked
            aggregation; Osprey's unblocked pooling is ``vpt_blocks=1``).
    """

    kind = "latent"
    units = TRP_UNITS
    needs = frozenset({"hidden_states", "feature_pyramid", "vision_tokens"})
    min_roundtrip_iou = 0.99  # continuous decoders: no quantization, only structure
    # REF-VLM's stage 2 trains box and mask decoders; the keypoint decoder joins
    # in stage 3 (add ``keypoint=dict(type="KeypointDecoder")`` to ``decoders``).
    default_decoders = {"box": {"type": "BoxDecoder"}, "mask": {"type": "MaskDecoder"}}

    def __init__(
        self,
        vd_cot: bool = True,
        unit_decoders: dict[str, str] | None = None,
        queries_per_decoder: int = 8,
        loss_weights: dict[str, float] | None = None,
        vpt_blocks: int = 2,
    ) -> None:
        super().__init__(TrpProcessor(vd_cot, vpt_blocks**2))
        self.vpt_blocks = vpt_blocks
        self.unit_decoders = dict(unit_decoders or {u: u for u in TRP_UNITS})
        self.queries_per_decoder = queries_per_decoder
        self.loss_weights = {"box": 0.5, "mask": 0.5, "keypoint": 0.5, **(loss_weights or {})}
        self.query_proj = nn.ModuleDict()
        self.decoders: dict[str, nn.Module] = {}  # plain dict: the model owns the modules

    def bind(self, tokenizer, hidden_size, decoders=None, proposers=None) -> None:
        super().bind(tokenizer, hidden_size, decoders, proposers)
        self.ref_id = tokenizer.convert_tokens_to_ids(REF)
        self.vpt_id = tokenizer.convert_tokens_to_ids(VPT)
        for unit, name in self.unit_decoders.items():
            if decoders is not None and name in decoders:
                self.decoders[unit] = decoders[name]
                self.query_proj[unit] = nn.Linear(hidden_size, decoders[name].dim)
        if not self.decoders:
            raise ValueError(
                f"trp needs at least one of the decoders {self.unit_decoders}; "
                f"the model has {sorted(decoders or {})}"
            )

    # ------------------------------------------------------------ prompts (input)
    def inject(self, embeds: torch.Tensor, view: ModelView) -> torch.Tensor:
        is_vpt = view.input_ids == self.vpt_id
        if not is_vpt.any():
            return embeds
        fmap = view.vision_tokens
        per_prompt = self.vpt_blocks**2
        feats, rows = [], []
        for b, (sample, rendered) in enumerate(zip(view.samples, view.rendered, strict=True)):
            slots = rendered.side.get("prompt_rows", [])
            if int(is_vpt[b].sum()) != per_prompt * len(slots):
                raise ValueError(
                    f"sample {sample.metainfo.get('sample_id')}: {int(is_vpt[b].sum())} {VPT} "
                    f"tokens for {len(slots)} prompt(s) of {per_prompt} each"
                )
            for group, row in slots:
                refs = sample.prompt_refs.group(group)
                mask = region_mask(refs, row, sample, fmap.shape[-2:], view.canvas_hw)
                feats.append(mask_guided_aggregation(fmap[b], mask.to(fmap), self.vpt_blocks))
                rows += [b] * per_prompt
        projected = view.project(torch.cat(feats), torch.tensor(rows, device=fmap.device))
        return embeds.masked_scatter(is_vpt.unsqueeze(-1), projected.to(embeds.dtype))

    # ------------------------------------------------------------ router
    def _route(
        self, hidden: torch.Tensor, ref_rows: list[list[int]], triplets: list[list[Triplet]]
    ) -> dict[str, tuple[torch.Tensor, list[list[tuple[int, list[int]]]]]]:
        """Per unit: ``(B, Q, H)`` padded queries and, per sample, the
        ``(triplet index, query slots)`` of each triplet routed there."""
        q = self.queries_per_decoder
        routed = {}
        for unit in self.decoders:
            queries = hidden.new_zeros(len(ref_rows), q, hidden.shape[-1])
            slots: list[list[tuple[int, list[int]]]] = []
            for b, (rows, trips) in enumerate(zip(ref_rows, triplets, strict=True)):
                used, mine = 0, []
                for t, trip in enumerate(trips):
                    if unit not in trip.units:
                        continue
                    picks = [p for p in trip.ref_positions if p < len(rows)][: q - used]
                    queries[b, used : used + len(picks)] = hidden[b, [rows[p] for p in picks]]
                    mine.append((t, list(range(used, used + len(picks)))))
                    used += len(picks)
                slots.append(mine)
            routed[unit] = (queries, slots)
        return routed

    def _decode_unit(self, unit: str, queries: torch.Tensor, view: ModelView) -> torch.Tensor:
        return self.decoders[unit](
            self.query_proj[unit](queries), view.feature_pyramid, view.images
        )

    # ------------------------------------------------------------ training
    def loss(self, view: ModelView) -> dict[str, torch.Tensor]:
        ref_rows, triplets, targets = [], [], []
        for b, rendered in enumerate(view.rendered):
            is_ref = (view.input_ids[b] == self.ref_id) & (view.labels[b] != -100)
            ref_rows.append(torch.nonzero(is_ref).flatten().tolist())
            # the triplets as rendered (one per target slot, in order), not re-parsed:
            # a no-target group writes no <REF> and must still keep its place
            groups = [view.samples[b].gt_refs.group(g) for g in rendered.side["target_groups"]]
            trips, ordinal = [], 0
            for g in groups:
                trips.append(
                    Triplet(group_phrase(g), _units(g), list(range(ordinal, ordinal + len(g))))
                )
                ordinal += len(g)
            triplets.append(trips)
            targets.append(groups)
        losses: dict[str, torch.Tensor] = {}
        for unit, (queries, slots) in self._route(view.hidden_states, ref_rows, triplets).items():
            decoder = self.decoders[unit]
            if not any(qs for mine in slots for _, qs in mine):
                parameters = [*decoder.parameters(), *self.query_proj[unit].parameters()]
                losses[f"loss_{unit}"] = 0.0 * sum(p.sum() for p in parameters)
                continue
            pred = self._decode_unit(unit, queries, view)
            preds, gts = [], []
            for b, mine in enumerate(slots):
                for t, qs in mine:
                    if not qs:
                        continue
                    preds.append(pred[b, qs])
                    gts.append(
                        decoder.targets(targets[b][t], view.samples[b].frame, view.canvas_hw)
                    )
            p, n_p = pad_groups(preds, decoder.pad_value)
            # targets stay float32: cast to a bf16 prediction's dtype they would
            # round before the matching cost sees them
            g, n_g = pad_groups([x.to(pred.device) for x in gts], decoder.pad_value)
            # any decoder's cost (a plugin's too) in float32, as REF-VLM matches
            cost = float32_cost(decoder.match_cost)(p, g)
            matches = grouped_hungarian(cost, n_p, n_g)
            matched_p = torch.cat([p[i, r] for i, (r, _) in enumerate(matches)])
            matched_g = torch.cat([g[i, c] for i, (_, c) in enumerate(matches)])
            weight = self.loss_weights.get(unit, 1.0)
            for name, value in decoder.loss(matched_p, matched_g).items():
                losses[f"loss_{name}"] = weight * value
        return losses

    # ------------------------------------------------------------ prediction
    def decode(self, view: ModelView) -> list[RefTargets]:
        ref_rows, triplets, failures = [], [], []
        for b, text in enumerate(view.texts):
            trips, fails = parse_triplets(text, tuple(self.decoders))
            ids = view.generated_ids[b].tolist()
            eos = self.tokenizer.eos_token_id
            end = ids.index(eos) if eos in ids else len(ids)
            ref_rows.append([i for i in range(end) if ids[i] == self.ref_id])
            triplets.append(trips)
            failures.append(fails)
        outputs: dict[int, dict[int, dict[str, object]]] = {}
        routed = self._route(view.generated_hidden_states, ref_rows, triplets)
        for unit, (queries, slots) in routed.items():
            if not any(slots):
                continue
            pred = self._decode_unit(unit, queries, view)
            for b, mine in enumerate(slots):
                frame = view.samples[b].frame
                for t, qs in mine:
                    if qs:
                        geo = self.decoders[unit].geometry(pred[b, qs], frame, view.canvas_hw)
                        outputs.setdefault(b, {}).setdefault(t, {})[unit] = geo
        return [
            _assemble(triplets[b], outputs.get(b, {}), failures[b], view.samples[b])
            for b in range(len(view.texts))
        ]

    def oracle_geometry(self, sample: GroundingDataSample, text: str) -> RefTargets | None:
        """Decoders that reproduce the ground truth: the parsed triplets get the
        target instances in order, so only the text structure can lose anything."""
        triplets, failures = parse_triplets(text, TRP_UNITS)
        target = sample.gt_refs.group(0)
        n = min(sum(len(t.ref_positions) for t in triplets), len(target))
        refs = target[:n]
        refs.set_metainfo({"parse_failures": failures})
        return refs


def _assemble(
    triplets: list[Triplet], outputs: dict[int, dict[str, dict]], failures: int, sample
) -> RefTargets:
    """One ``RefTargets`` from the decoders' outputs per triplet.

    ``parse_repairs`` counts the triplets read only in part (once each, if any
    of their instances is read): fewer ``<REF>`` decoded than the triplet
    wrote, or a unit it names left undecoded (:meth:`TrpCodec._route` keeps
    at most ``queries_per_decoder`` queries per decoder and sample, and only
    ``<REF>`` tokens the model generated)."""
    boxes, masks, points, phrases, units, groups = [], [], [], [], [], []
    hw = tuple(int(v) for v in sample.ori_shape)
    repairs = 0
    for t, trip in enumerate(triplets):
        geo = outputs.get(t)
        if not geo:
            failures += 1  # no decoder for its unit(s), or every <REF> beyond the budget
            continue
        count = min(len(next(iter(v.values()))) for v in geo.values() if v)
        read_before = len(boxes)
        for i in range(count):
            mask = geo["mask"]["masks"][i] if "mask" in geo else None
            if "box" in geo:
                box = geo["box"]["boxes"][i]
            elif "keypoint" in geo:
                box = geo["keypoint"]["boxes"][i]
            elif mask is not None and mask.any():
                ys, xs = torch.nonzero(mask, as_tuple=True)
                box = [xs.min().item(), ys.min().item(), xs.max().item() + 1, ys.max().item() + 1]
            else:
                failures += 1  # an empty mask and nothing else to place it
                continue
            box = np.clip(np.asarray(box, dtype=np.float64), 0, [hw[1], hw[0], hw[1], hw[0]])
            if box[2] <= box[0] or box[3] <= box[1]:
                failures += 1
                continue
            boxes.append(box)
            masks.append(mask if mask is not None else torch.zeros(hw, dtype=torch.bool))
            if "keypoint" in geo:
                points.append(geo["keypoint"]["points"][i])
            phrases.append(trip.phrase)
            units.append(next(u for u in TRP_UNITS if u in geo))
            groups.append(t)
        cut = count < len(trip.ref_positions) or len(geo) < len(set(trip.units))
        repairs += cut and len(boxes) > read_before
    if not boxes:
        return RefTargets.empty(parse_failures=failures, parse_repairs=repairs)
    has_mask = any("mask" in g for g in outputs.values())
    refs = RefTargets.build(
        boxes,
        phrases=phrases,
        units=units,
        group_ids=groups,
        masks=torch.stack(masks) if has_mask else None,
        points=points if len(points) == len(boxes) else None,
    )
    refs.set_metainfo({"parse_failures": failures, "parse_repairs": repairs})
    return refs
