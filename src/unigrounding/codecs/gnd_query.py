"""``gnd_query``: UGLMM's grounding tokens and query decoder
(UGLMM's supplementary material [docs/papers.md]).

Output: each grounded object is followed by ``k`` ``[GND]`` tokens (UGLMM's
default 3; its Table 5 ablates 1 / 2 / 3 / 5) — ``the red circle
[GND][GND][GND]``, several instances of one phrase separated by ``, ``. The
last-layer hidden states of an object's ``k`` tokens, concatenated and
projected, are its grounding embedding; the grounding decoder
(:class:`~unigrounding.decoders.GroundingQueryDecoder`) picks the learnable
query most similar to it, whose box and mask are the output.

Input: a visual prompt is one ``<prompt>`` token whose embedding is the mask
pooling of the tower's features over the region (UGLMM's region encoder
follows Osprey: unblocked pooling), sent through the shared projector.

Only the units a target asks for are supervised: REC targets train the box
terms of eq. (1), RES targets add the mask terms.
"""

from __future__ import annotations

import re

import numpy as np
import torch
from torch import nn

from ..decoders.matching import PAD_BOX, pad_groups
from ..decoders.query_decoders import box_geometry, box_targets, mask_geometry, mask_targets
from ..registry import CODECS
from ..structures import GroundingDataSample, RefTargets
from .base import Codec, ModelView, Processor, group_phrase
from .visual_prompts import mask_guided_aggregation, region_mask

GND, PROMPT = "[GND]", "<prompt>"
_RUN = re.compile(r"(?:" + re.escape(GND) + r")+")
_LEAD = re.compile(r"^[\s,.;:]*(?:and\s+)?(?:sure,?\s*)?(?:it\s+is\s+)?", re.I)


def parse_objects(text: str, k: int) -> tuple[list[tuple[str, int, list[int]]], int]:
    """``(phrase, group, [GND] ordinals)`` per object in ``text``, and failures.

    A run of ``L`` consecutive ``[GND]`` holds ``L // k`` objects; a remainder
    is a failure. Runs separated only by a comma continue the previous group;
    otherwise the text since the previous run is the new group's phrase.
    """
    objects, failures, group, ordinal, last_end, phrase = [], 0, -1, 0, 0, ""
    for run in _RUN.finditer(text):
        length = len(run.group(0)) // len(GND)
        between = text[last_end : run.start()]
        if group < 0 or between.strip() not in (",", ""):
            group += 1
            phrase = _LEAD.sub("", between).strip(" ,.;:")
        for i in range(length // k):
            objects.append((phrase, group, list(range(ordinal + i * k, ordinal + (i + 1) * k))))
        failures += length % k > 0
        ordinal += length
        last_end = run.end()
    return objects, failures


@CODECS.register_module()
class GndQueryProcessor(Processor):
    """Targets as ``phrase [GND]*k`` (instances joined by ``, ``), prompts as
    ``<prompt>``. :meth:`parse` reads the object structure; geometry comes from
    the grounding decoder (the returned ``RefTargets`` is empty, the objects
    travel in its metainfo)."""

    special_tokens = (GND, PROMPT)

    def __init__(self, k: int = 3) -> None:
        if k < 1:
            raise ValueError(f"k (grounding tokens per object) must be >= 1, got {k}")
        self.k = k

    def encode(self, refs: RefTargets, sample: GroundingDataSample, role: str) -> str:
        if role == "prompt":
            return ", ".join([PROMPT] * len(refs))
        runs = ", ".join([GND * self.k] * len(refs))
        return f"{group_phrase(refs)} {runs}".strip()

    def parse(self, text: str, sample: GroundingDataSample) -> RefTargets:
        objects, failures = parse_objects(text, self.k)
        refs = RefTargets.empty(parse_failures=failures)
        refs.set_metainfo({"objects": objects})
        return refs


@CODECS.register_module(name="gnd_query")
class GndQueryCodec(Codec):
    """Latent codec: ``k`` ``[GND]`` hidden states per object → grounding decoder.

    Args:
        k: grounding tokens per object.
        decoder: name of the :class:`~unigrounding.decoders.GroundingQueryDecoder`
            in the model's ``decoders``.
    """

    kind = "latent"
    units = ("box", "mask")
    needs = frozenset({"hidden_states", "feature_pyramid", "vision_tokens"})
    min_roundtrip_iou = 0.99  # continuous decoder: no quantization, only structure
    default_decoders = {"grounding": {"type": "GroundingQueryDecoder"}}

    def __init__(self, k: int = 3, decoder: str = "grounding") -> None:
        super().__init__(GndQueryProcessor(k))
        self.k, self.decoder_name = k, decoder
        self.decoders: dict[str, nn.Module] = {}  # plain dict: the model owns the module

    def bind(self, tokenizer, hidden_size, decoders=None, proposers=None) -> None:
        super().bind(tokenizer, hidden_size, decoders, proposers)
        if decoders is None or self.decoder_name not in decoders:
            raise ValueError(
                f"gnd_query needs the grounding decoder {self.decoder_name!r}; "
                f"the model has {sorted(decoders or {})}"
            )
        self.decoders["grounding"] = decoder = decoders[self.decoder_name]
        self.embed_proj = nn.Linear(self.k * hidden_size, decoder.dim)
        self.gnd_id = tokenizer.convert_tokens_to_ids(GND)
        self.prompt_id = tokenizer.convert_tokens_to_ids(PROMPT)

    @property
    def decoder(self) -> nn.Module:
        return self.decoders["grounding"]

    def inject(self, embeds: torch.Tensor, view: ModelView) -> torch.Tensor:
        is_prompt = view.input_ids == self.prompt_id
        if not is_prompt.any():
            return embeds
        fmap = view.vision_tokens
        feats, rows = [], []
        for b, (sample, rendered) in enumerate(zip(view.samples, view.rendered, strict=True)):
            slots = rendered.side["prompt_rows"]
            if int(is_prompt[b].sum()) != len(slots):
                raise ValueError(
                    f"sample {sample.metainfo.get('sample_id')}: {int(is_prompt[b].sum())} "
                    f"{PROMPT} tokens for {len(slots)} prompt(s)"
                )
            for group, row in slots:
                refs = sample.prompt_refs.group(group)
                mask = region_mask(refs, row, sample, fmap.shape[-2:], view.canvas_hw)
                feats.append(mask_guided_aggregation(fmap[b], mask.to(fmap), 1, None))
                rows.append(b)
        projected = view.project(torch.cat(feats), torch.tensor(rows, device=fmap.device))
        return embeds.masked_scatter(is_prompt.unsqueeze(-1), projected.to(embeds.dtype))

    def _embeddings(
        self, hidden: torch.Tensor, positions: list[list[int]], objects: list[list[list[int]]]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(B, M, dim)`` grounding embeddings (padded) and ``(B,)`` counts:
        object ``j`` of sample ``b`` concatenates the hidden states at
        ``positions[b][o]`` for its ``k`` ordinals ``o``."""
        width = self.k * hidden.shape[-1]
        per_sample = []
        for b, (pos, objs) in enumerate(zip(positions, objects, strict=True)):
            rows = [[pos[o] for o in ords] for ords in objs if ords[-1] < len(pos)]
            index = torch.tensor(rows, dtype=torch.long, device=hidden.device).reshape(-1)
            per_sample.append(hidden[b, index].reshape(len(rows), width))
        padded, counts = pad_groups(per_sample)
        return self.embed_proj(padded), counts.to(hidden.device)

    def loss(self, view: ModelView) -> dict[str, torch.Tensor]:
        positions, objects, boxes, masks = [], [], [], []
        use_masks = True
        canvas = view.canvas_hw
        for b, (sample, rendered) in enumerate(zip(view.samples, view.rendered, strict=True)):
            is_gnd = (view.input_ids[b] == self.gnd_id) & (view.labels[b] != -100)
            positions.append(torch.nonzero(is_gnd).flatten().tolist())
            groups = [sample.gt_refs.group(g) for g in rendered.side["target_groups"]]
            n = sum(len(g) for g in groups)
            objects.append([list(range(j * self.k, (j + 1) * self.k)) for j in range(n)])
            rows = [g for g in groups if len(g)]
            refs = RefTargets.cat(rows) if rows else sample.gt_refs[:0]
            boxes.append(box_targets(refs, sample.frame, canvas))
            use_masks &= all(u == "mask" for u in refs.units) and ("masks" in refs or not len(refs))
            masks.append(mask_targets(refs, sample.frame, canvas) if use_masks else None)
        embeddings, counts = self._embeddings(view.hidden_states, positions, objects)
        use_masks &= int(counts.sum()) > 0
        out = self.decoder(embeddings, view.feature_pyramid, view.images, with_masks=use_masks)
        if int(counts.sum()) == 0:  # nothing to ground: keep the decoder in the graph
            return {"loss_gnd": 0.0 * sum(v.sum() for v in out.values())}
        # targets stay float32 (as built): in a bf16 embedding's dtype they
        # would round before the matching cost sees them
        device = embeddings.device
        gt_boxes, _ = pad_groups([x.to(device) for x in boxes], PAD_BOX.to(device))
        gt_masks = None
        if use_masks:
            gt_masks, _ = pad_groups([x.to(device) for x in masks])
        losses = self.decoder.loss(out, gt_boxes[:, : embeddings.shape[1]], gt_masks, counts)
        return {f"loss_{k}": v for k, v in losses.items()}

    def decode(self, view: ModelView) -> list[RefTargets]:
        parsed, positions = [], []
        eos = self.tokenizer.eos_token_id
        for b, text in enumerate(view.texts):
            parsed.append(parse_objects(text, self.k))
            ids = view.generated_ids[b].tolist()
            end = ids.index(eos) if eos in ids else len(ids)
            positions.append([i for i in range(end) if ids[i] == self.gnd_id])
        objects = [[ords for *_, ords in objs] for objs, _ in parsed]
        embeddings, counts = self._embeddings(view.generated_hidden_states, positions, objects)
        # an object whose [GND] tokens the model did not generate (typed out
        # as text, say) has no hidden states: it is lost, a failure
        parsed = [
            (objs, f + len(objs) - int(n)) for (objs, f), n in zip(parsed, counts, strict=True)
        ]
        if int(counts.sum()) == 0:
            return [RefTargets.empty(parse_failures=f) for _, f in parsed]
        out = self.decoder(embeddings, view.feature_pyramid, view.images)
        canvas = view.canvas_hw
        results = []
        for b, (objs, failures) in enumerate(parsed):
            n = int(counts[b])
            if n == 0:
                results.append(RefTargets.empty(parse_failures=failures))
                continue
            best = out["logits"][b, :, :n].argmax(0)
            sample = view.samples[b]
            box = box_geometry(out["boxes"][b, best], sample.frame, canvas)
            hw = np.array(sample.ori_shape[::-1], dtype=np.float64)
            box = np.clip(box, 0, np.tile(hw, 2))
            keep = (box[:, 2] > box[:, 0]) & (box[:, 3] > box[:, 1])
            kept = [o for o, k in zip(objs[:n], keep, strict=True) if k]
            if not kept:
                results.append(RefTargets.empty(parse_failures=failures + n))
                continue
            refs = RefTargets.build(
                box[keep],
                phrases=[p for p, _, _ in kept],
                units=["box"] * len(kept),
                group_ids=[g for _, g, _ in kept],
                masks=mask_geometry(
                    out["masks"][b, best[torch.as_tensor(keep)]], sample.frame, canvas
                ),
                scores=out["logits"][b, best, torch.arange(n)]
                .sigmoid()[torch.as_tensor(keep)]
                .tolist(),
            )
            refs.set_metainfo({"parse_failures": failures + int((~keep).sum())})
            results.append(refs)
        return results

    def oracle_geometry(self, sample: GroundingDataSample, text: str) -> RefTargets | None:
        """A decoder that reproduces the ground truth: the parsed objects get the
        target instances in order, so only the text structure can lose anything."""
        objects, failures = parse_objects(text, self.k)
        target = sample.gt_refs.group(0)
        refs = target[: min(len(objects), len(target))]
        refs.set_metainfo({"parse_failures": failures})
        return refs
