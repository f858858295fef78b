"""``region_proxy``: Groma's localized visual tokenization
(Groma [docs/papers.md], sections 3.1-3.2).

A class-agnostic proposer (:class:`~unigrounding.proposers.DeformableDetrProposer`,
trained in its own detection stage and frozen here) finds regions; each kept
proposal becomes one *region token* registered by a proxy token ``<r_k>`` in a
header after the image: ``Regions: <r0><region>, <r1><region>, ...``. The
answer grounds a phrase by naming proxies: ``<p> the red circle </p> <roi>
<r3> </roi>`` (several ``<r_k>`` for several instances); ``<r_k>`` decodes to
the k-th region's box. A user-given box is one more region with its own proxy
(``What is <r12><region>?``), outside the header.

Which proxy a ground-truth box gets, and how many regions there are, depend on
the image: the processor writes deferred markers (``<regions>``, ``<r_gt>``,
``<r_user>``) and :meth:`RegionProxyCodec.prepare` resolves them once the
proposals exist, rewriting the token sequence; it leaves each sample's
regions in its ``codec_state`` (:class:`RegionHeader`), which ``parse`` reads.

Choices the paper leaves open:

* **Region encoder.** Multi-scale RoIAlign (torchvision ``roi_align``, boxes
  as x1, y1, x2, y2 in input pixels with ``spatial_scale = 1 / stride``, pixel
  -aligned) over the maps behind the image tokens (the tower's
  ``token_levels``: the last three levels of the tiny preset), averaged over
  the RoI, concatenated across levels and sent through the *shared* projector
  (Groma: "an MLP layer to project the image tokens and region tokens"): a
  region token is what an image token over that region would be.
* **Ground truth among proposals.** Each ground-truth box maps to the proxy of
  its best-IoU proposal. ``inject_gt="missed"`` (default) adds a ground-truth
  box as a region only when no proposal reaches ``inject_iou`` (0.5) with it —
  so every training answer names a box that is right — at a random position
  among the regions (at the end it would teach "the answer is the last
  region"). ``"never"`` leaves a missed box to its best (poor) proposal;
  ``"always"`` injects every one, which Groma's users found inflates the
  training signal: the model learns to spot the pristine injected box, which
  never occurs at inference.
* **Trigger.** ``[grounding]`` ends every user turn whose answer grounds
  something (Groma's instruction for grounded output).
* **Header position.** Groma's (after the image, before the question) by
  default; ``header="after_question"`` ends the user turn with it instead.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass

import numpy as np
import torch
from torchvision.ops import box_iou, roi_align

from ..registry import CODECS
from ..structures import GroundingDataSample, RefTargets
from ..structures.sample import CodecState
from .base import Codec, ModelView, Processor, Rendered, group_phrase, rewrite_tokens

REGION, REGIONS = "<region>", "<regions>"
TARGET_PROXY, PROMPT_PROXY = "<r_gt>", "<r_user>"
P_OPEN, P_CLOSE, ROI_OPEN, ROI_CLOSE = "<p>", "</p>", "<roi>", "</roi>"
TRIGGER = "[grounding]"
_PROXY = re.compile(r"<r(\d+)>")
_ROI = re.compile(re.escape(ROI_OPEN) + r"(.*?)(?:" + re.escape(ROI_CLOSE) + r"|$)", re.S)
_PHRASE = re.compile(re.escape(P_OPEN) + r"(.*?)" + re.escape(P_CLOSE), re.S)


def proxy(k: int) -> str:
    return f"<r{k}>"


@dataclass(frozen=True)
class RegionHeader(CodecState):
    """What :meth:`RegionProxyCodec.prepare` records of one sample: ``boxes``,
    the regions ``<r0>``, ``<r1>``, ... stand for (the header's, then the
    user's), xyxy in original-image pixels."""

    boxes: tuple[tuple[float, ...], ...]


@CODECS.register_module()
class RegionProxyProcessor(Processor):
    """Groma's syntax with deferred proxies; :meth:`parse` reads ``<r_k>`` back
    through the sample's :class:`RegionHeader` (set by the codec's ``prepare``).

    Args:
        num_proxies: proxy tokens ``<r0>`` ... in the vocabulary; proposals
            beyond ``num_proxies`` minus the user regions are dropped.
        trigger: append ``[grounding]`` to user turns whose answer grounds.
        header: ``"after_image"`` (Groma: ``Image: <image>. Regions: ...``
            before the question) or ``"after_question"`` (the header ends the
            user turn, so region tokens come after the words they are asked
            about, as the image does with ``image_placement="after_text"``).
    """

    words = ("Regions",)
    HEADERS = ("after_image", "after_question")

    def __init__(
        self, num_proxies: int = 128, trigger: bool = True, header: str = "after_image"
    ) -> None:
        if header not in self.HEADERS:
            raise ValueError(f"header must be one of {self.HEADERS}, got {header!r}")
        self.num_proxies, self.trigger, self.header = num_proxies, trigger, header
        self.special_tokens = (
            *(proxy(k) for k in range(num_proxies)),
            REGION,
            REGIONS,
            TARGET_PROXY,
            PROMPT_PROXY,
            P_OPEN,
            P_CLOSE,
            ROI_OPEN,
            ROI_CLOSE,
            TRIGGER,
        )

    def encode(self, refs: RefTargets, sample: GroundingDataSample, role: str) -> str:
        if role == "prompt":
            return ", ".join([PROMPT_PROXY + REGION] * len(refs))
        return f"{P_OPEN} {group_phrase(refs)} {P_CLOSE} {ROI_OPEN} {TARGET_PROXY * len(refs)} {ROI_CLOSE}"

    def format(self, sample: GroundingDataSample) -> Rendered:
        """Slots filled, the region header after the image, the trigger on
        turns whose answer grounds."""
        rendered = super().format(sample)
        turns = [dict(t) for t in rendered.turns]
        for i, turn in enumerate(turns):
            if turn["role"] != "user":
                continue
            answer = turns[i + 1]["text"] if i + 1 < len(turns) else ""
            if self.trigger and TARGET_PROXY in answer:
                turn["text"] = f"{turn['text']} {TRIGGER}"
            if "<image>" in turn["text"]:
                header = f"Regions: {REGIONS}."
                turn["text"] = (
                    turn["text"].replace("<image>", f"<image> {header}", 1)
                    if self.header == "after_image"
                    else f"{turn['text']} {header}"
                )
        return Rendered(turns, rendered.side)

    def parse(self, text: str, sample: GroundingDataSample) -> RefTargets:
        """One group per ``<roi>`` block (its phrase the preceding ``<p>``
        block); a proxy beyond the sample's regions (all of them, before
        ``prepare``) is a failure. A block that is read but was never closed
        — it runs to the end of the answer, or into the next ``<roi>`` — is a
        repair (one per block)."""
        regions = _regions(sample)
        boxes, phrases, groups, failures, repairs = [], [], [], 0, 0
        last_end = 0
        for g, block in enumerate(_ROI.finditer(text)):
            named = _PHRASE.findall(text[last_end : block.start()])
            phrase = " ".join(named[-1].split()) if named else ""
            last_end = block.end()
            read_before = len(boxes)
            for k in (int(m) for m in _PROXY.findall(block.group(1))):
                if k >= len(regions):
                    failures += 1
                    continue
                boxes.append(regions[k])
                phrases.append(phrase)
                groups.append(g)
            unclosed = not block.group(0).endswith(ROI_CLOSE) or ROI_OPEN in block.group(1)
            repairs += unclosed and len(boxes) > read_before
        failures += len(_PROXY.findall(_ROI.sub("", text)))  # proxies outside any <roi>
        if not boxes:
            return RefTargets.empty(parse_failures=failures)
        refs = RefTargets.build(boxes, phrases=phrases, group_ids=groups, where="region_proxy")
        refs.set_metainfo({"parse_failures": failures, "parse_repairs": repairs})
        return refs


def region_features(
    levels: list[torch.Tensor], boxes: list[torch.Tensor], canvas_hw: tuple[int, int], pool: int = 4
) -> torch.Tensor:
    """``(sum K_b, sum C_l)``: the mean RoIAlign feature of each box on each level,
    concatenated across levels. ``boxes[b]`` is ``(K_b, 4)`` x1, y1, x2, y2 in
    model-input pixels (the format ``roi_align`` expects); a level's stride is
    the ``(H, W)`` canvas's width over its own."""
    out = []
    for fmap in levels:
        pooled = roi_align(
            fmap,
            [b.to(fmap.dtype) for b in boxes],
            output_size=pool,
            spatial_scale=fmap.shape[-1] / canvas_hw[1],
            sampling_ratio=2,
            aligned=True,
        )
        out.append(pooled.mean((-2, -1)))
    return torch.cat(out, dim=1)


@CODECS.register_module(name="region_proxy")
class RegionProxyCodec(Codec):
    """Region tokens behind proxy tokens (Groma).

    Args:
        num_proxies / trigger / header: :class:`RegionProxyProcessor` options.
        proposer: name of the proposer in the model's ``proposers``.
        inject_gt: ``"missed"`` / ``"never"`` / ``"always"`` (module docstring).
        inject_iou: a proposal at least this close to a ground-truth box covers it.
        pool: RoIAlign output side before averaging.
    """

    kind = "vocab"
    units = ("box",)
    needs = frozenset({"proposals", "vision_levels"})
    min_roundtrip_iou = 0.0  # set by the proposer, not the codec: see ``roundtrip``
    default_proposers = {"proposer": {"type": "DeformableDetrProposer"}}

    def __init__(
        self,
        num_proxies: int = 128,
        trigger: bool = True,
        header: str = "after_image",
        proposer: str = "proposer",
        inject_gt: str = "missed",
        inject_iou: float = 0.5,
        pool: int = 4,
    ) -> None:
        if inject_gt not in ("missed", "never", "always"):
            raise ValueError(f"inject_gt must be 'missed', 'never' or 'always', got {inject_gt!r}")
        super().__init__(RegionProxyProcessor(num_proxies, trigger, header))
        self.proposer_name, self.inject_gt, self.inject_iou = proposer, inject_gt, inject_iou
        self.pool = pool

    def bind(self, tokenizer, hidden_size, decoders=None, proposers=None) -> None:
        super().bind(tokenizer, hidden_size, decoders, proposers)
        if proposers is None or self.proposer_name not in proposers:
            raise ValueError(
                f"region_proxy needs the proposer {self.proposer_name!r}; "
                f"the model has {sorted(proposers or {})}"
            )
        ids = tokenizer.convert_tokens_to_ids
        self.proxy_ids = torch.tensor(
            [ids(proxy(k)) for k in range(self.processor.num_proxies)], dtype=torch.long
        )
        self.region_id, self.regions_id = ids(REGION), ids(REGIONS)
        self.target_id, self.prompt_id = ids(TARGET_PROXY), ids(PROMPT_PROXY)
        self.comma_id = tokenizer(",", add_special_tokens=False).input_ids
        # token id -> proxy number (-1: not a proxy), for inject's lookup
        self.proxy_number = torch.full((len(tokenizer),), -1, dtype=torch.long)
        self.proxy_number[self.proxy_ids] = torch.arange(len(self.proxy_ids))

    # ------------------------------------------------------------------ prepare
    def prepare(self, view: ModelView) -> None:
        """Regions per image (proposals, injected ground truth, user boxes), the
        deferred markers resolved, and the region tokens computed."""
        training = view.labels is not None
        proposals = view.proposals[self.proposer_name]
        replacements, all_regions = [], []
        for b, (sample, rendered) in enumerate(zip(view.samples, view.rendered, strict=True)):
            frame = sample.frame
            targets = _boxes_of(sample.gt_refs, rendered.side["target_groups"], frame)
            prompts = _prompt_boxes(sample.prompt_refs, rendered.side["prompt_rows"], frame)
            regions = proposals[b].bboxes.detach().float().cpu()
            regions = regions[: max(self.processor.num_proxies - len(prompts), 0)]
            if training and len(targets):
                regions = self._inject(regions, targets, sample)
            n = len(regions)
            ids = view.input_ids[b][view.attention_mask[b].bool()].tolist()
            changes = {}
            target_proxies = iter(self._assign(regions, targets))
            prompt_index = iter(range(n, n + len(prompts)))
            for t, token in enumerate(ids):
                if token == self.regions_id:
                    header = []
                    for k in range(n):
                        header += [int(self.proxy_ids[k]), self.region_id]
                        header += self.comma_id if k < n - 1 else []
                    changes[t] = header
                elif token == self.target_id:
                    changes[t] = [int(self.proxy_ids[next(target_proxies)])]
                elif token == self.prompt_id:
                    changes[t] = [int(self.proxy_ids[next(prompt_index)])]
            replacements.append(changes)
            regions = torch.cat([regions, prompts]) if len(prompts) else regions
            all_regions.append(regions)
            original = frame.boxes_to_original(regions.numpy())
            sample.codec_state = RegionHeader(tuple(map(tuple, original.tolist())))
        rewrite_tokens(view, replacements, self.tokenizer.pad_token_id)
        view.codec_state["region_tokens"] = self._encode_regions(view, all_regions)

    def _inject(
        self, regions: torch.Tensor, targets: torch.Tensor, sample: GroundingDataSample
    ) -> torch.Tensor:
        """Ground-truth boxes added among the regions per ``inject_gt``, each at
        a position drawn from the sample id (reproducible, order-free)."""
        if self.inject_gt == "never":
            return regions
        if self.inject_gt == "always" or not len(regions):
            missed = targets
        else:
            best = box_iou(targets, regions).max(dim=1).values
            missed = targets[best < self.inject_iou]
        rng = np.random.default_rng(zlib.crc32(str(sample.metainfo.get("sample_id")).encode()))
        out = list(regions)
        for box in missed:
            if len(out) < self.processor.num_proxies:
                out.insert(int(rng.integers(len(out) + 1)), box)
        return torch.stack(out) if out else regions

    def _assign(self, regions: torch.Tensor, targets: torch.Tensor) -> list[int]:
        """Best-IoU region per target box (region 0 when there are none)."""
        if not len(targets):
            return []
        if not len(regions):
            return [0] * len(targets)
        return box_iou(targets, regions).argmax(dim=1).tolist()

    def _encode_regions(self, view: ModelView, regions: list[torch.Tensor]) -> torch.Tensor | None:
        """``(sum K_b, D)`` region tokens, in region order per image."""
        if not sum(len(r) for r in regions):
            return None
        device = view.vision_levels[0].device
        feats = region_features(
            view.vision_levels, [r.to(device) for r in regions], view.canvas_hw, self.pool
        )
        rows = torch.cat(
            [torch.full((len(r),), b, dtype=torch.long) for b, r in enumerate(regions)]
        ).to(device)
        return view.project(feats, rows)

    def inject(self, embeds: torch.Tensor, view: ModelView) -> torch.Tensor:
        """Each ``<region>`` gets the token of the region its preceding proxy names."""
        is_region = view.input_ids == self.region_id
        if not is_region.any():
            return embeds
        counts = [len(RegionHeader.of(s).boxes) for s in view.samples]
        offsets = torch.tensor([0, *np.cumsum(counts)[:-1]], device=embeds.device)
        rows, cols = is_region.nonzero(as_tuple=True)
        k = self.proxy_number.to(embeds.device)[view.input_ids[rows, cols - 1]]
        if (k < 0).any():
            b = int(rows[(k < 0).nonzero()[0]])
            raise ValueError(
                f"sample {view.samples[b].metainfo.get('sample_id')}: a {REGION} token "
                "does not follow a proxy token"
            )
        tokens = view.codec_state["region_tokens"][offsets[rows] + k]
        return embeds.masked_scatter(is_region.unsqueeze(-1), tokens.to(embeds.dtype))

    # ------------------------------------------------------------------ oracle
    def oracle_geometry(self, sample: GroundingDataSample, text: str) -> RefTargets | None:
        """The ideal proxies: each target instance's best-IoU region (the
        ceiling is the proposer's, not the syntax's)."""
        target = sample.gt_refs.group(0)
        regions = torch.as_tensor(_regions(sample), dtype=torch.float32)
        if not len(regions):
            return RefTargets.empty(parse_failures=len(target))
        best = self._assign(regions, target.boxes.float())
        refs = RefTargets.build(regions[best], phrases=target.phrases, group_ids=[0] * len(target))
        return refs


def _regions(sample: GroundingDataSample) -> np.ndarray:
    """``(K, 4)`` the sample's regions; none before ``prepare``."""
    state = RegionHeader.get(sample)
    if state is None:
        return np.zeros((0, 4))
    return np.asarray(state.boxes, dtype=np.float64).reshape(-1, 4)


def _boxes_of(refs: RefTargets, groups: list[int], frame) -> torch.Tensor:
    """``(N, 4)`` model-input boxes of the instances of ``groups``, in order."""
    boxes = [refs.group(g).boxes for g in groups]
    if not boxes or not sum(len(b) for b in boxes):
        return torch.zeros(0, 4)
    stacked = torch.cat(boxes).numpy()
    return torch.as_tensor(frame.boxes_to_input(stacked), dtype=torch.float32)


def _prompt_boxes(refs: RefTargets, rows: list[tuple[int, int]], frame) -> torch.Tensor:
    """``(P, 4)`` model-input boxes of the prompt instances, in prompt order."""
    if not rows:
        return torch.zeros(0, 4)
    stacked = np.stack([refs.group(g).boxes[r].numpy() for g, r in rows])
    return torch.as_tensor(frame.boxes_to_input(stacked), dtype=torch.float32)
