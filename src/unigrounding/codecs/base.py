"""The codec contract (DESIGN.md section 3).

A codec is how one published paradigm puts regions into and takes regions out
of an LLM conversation. It has two parts:

* :class:`Processor` — pure and picklable: fills the ``{prompt:i}`` /
  ``{target:i}`` slots of a codec-neutral conversation with text and special
  tokens (:meth:`Processor.format`), and reads regions back out of generated
  text (:meth:`Processor.parse`, which never raises).
* :class:`Codec` — an ``nn.Module`` holding only the codec's own parameters. The
  shared model calls its hooks in a fixed order (``prepare`` → ``inject`` →
  LLM → ``loss`` / ``decode``) and never asks which codec it is talking to.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn

from ..layers.sequences import IGNORE, pad_batch
from ..structures import SLOT_PATTERN, GroundingDataSample, RefTargets

#: Model outputs a codec may declare in :attr:`Codec.needs`.
NEEDS = frozenset(
    {
        "hidden_states",
        "image_feats",
        "vision_tokens",
        "vision_levels",
        "feature_pyramid",
        "proposals",
        "generated_logits",
    }
)


@dataclass
class Rendered:
    """A conversation with every slot filled, plus codec side data for ``prepare``."""

    turns: list[dict[str, str]]
    side: dict[str, Any] = field(default_factory=dict)


class Processor:
    """Text side of a codec: slot rendering and tolerant parsing.

    Subclasses implement :meth:`encode` (one referent group → text) and
    :meth:`parse`; :meth:`format` fills every slot of a conversation with it.
    """

    #: Special tokens this processor emits; added to the tokenizer by the model.
    special_tokens: ClassVar[tuple[str, ...]] = ()
    #: Plain words of the codec's own syntax. The offline word-level tokenizer
    #: of the tiny preset learns them as whole words (otherwise they would be
    #: spelled letter by letter); a real model's tokenizer ignores them.
    words: ClassVar[tuple[str, ...]] = ()

    def encode(self, refs: RefTargets, sample: GroundingDataSample, role: str) -> str:
        """Text for one referent group; ``role`` is ``"prompt"`` or ``"target"``."""
        raise NotImplementedError

    def parse(self, text: str, sample: GroundingDataSample) -> RefTargets:
        """Regions in ``text``, in original-image pixels. Never raises: unreadable
        parts are skipped and counted in ``metainfo["parse_failures"]``, parts
        read only after a repair in ``metainfo["parse_repairs"]``."""
        raise NotImplementedError

    def format(self, sample: GroundingDataSample) -> Rendered:
        """Every slot filled by :meth:`encode`. ``side`` records the slots in
        the order they were rendered — ``target_groups`` (group ids of
        ``gt_refs``) and ``prompt_rows`` (``(group, row)`` per prompt instance)
        — so latent codecs can pair their placeholder tokens with referents."""
        targets: list[int] = []
        prompts: list[tuple[int, int]] = []

        def fill(match: re.Match) -> str:
            kind, index = match.group(1), int(match.group(2))
            refs = (sample.gt_refs if kind == "target" else sample.prompt_refs).group(index)
            if kind == "target":
                targets.append(index)
            else:
                prompts.extend((index, row) for row in range(len(refs)))
            return self.encode(refs, sample, kind)

        turns = [dict(t, text=re.sub(SLOT_PATTERN, fill, t["text"])) for t in sample.conversation]
        return Rendered(turns, {"target_groups": targets, "prompt_rows": prompts})


def group_phrase(refs: RefTargets, default: str = "target") -> str:
    """The phrase of a referent group (its first non-empty one), or ``default``."""
    phrases = [p for p in refs.phrases if p] if len(refs) else []
    return phrases[0] if phrases else default


def rewrite_tokens(view: ModelView, replacements: list[dict[int, list[int]]], pad_id: int) -> None:
    """Replace tokens of the view's sequences, growing or shrinking them.

    ``replacements[b]`` maps a position of row ``b``'s (unpadded) tokens to the
    ids that take its place. A replaced token that is supervised (its label is
    not ignored) has its replacement supervised; otherwise the replacement is
    ignored too. The batch is re-padded on the side it was padded (left for
    generation, right for training).
    """

    left = view.labels is None
    ids_rows, label_rows = [], []
    for b, changes in enumerate(replacements):
        real = view.attention_mask[b].bool()
        ids = view.input_ids[b][real].tolist()
        labels = view.labels[b][real].tolist() if not left else [IGNORE] * len(ids)
        new_ids, new_labels = [], []
        for t, (token, label) in enumerate(zip(ids, labels, strict=True)):
            put = changes.get(t, [token])
            new_ids += put
            new_labels += [IGNORE] * len(put) if label == IGNORE else put
        ids_rows.append(new_ids)
        label_rows.append(new_labels)
    device = view.input_ids.device
    ids, mask = pad_batch(ids_rows, pad_id, left=left)
    view.input_ids, view.attention_mask = ids.to(device), mask.to(device)
    if not left:
        view.labels = pad_batch(label_rows, IGNORE, left=False)[0].to(device)


@dataclass
class ModelView:
    """What the shared model exposes to a codec for one batch.

    Fields a codec did not declare in :attr:`Codec.needs` stay ``None``.
    Inputs of different sizes share one canvas (:attr:`canvas_hw`): every
    image-feature map covers the canvas, and ``token_grids[b]`` is the
    ``(rows, cols)`` of sample ``b``'s own image tokens, the top left of the
    ``image_grid`` of ``image_feats`` (``(B, rows * cols, D)``, row-major), in
    raster order in its conversation.
    ``vision_tokens`` is the tower's token map before the projector,
    ``(B, C, H, W)``; ``vision_levels`` are the maps it is made of (the tower's
    ``token_levels``), each at its own resolution. With either comes
    ``project(features, rows)``, which sends ``(N, C)`` feature vectors of
    samples ``rows`` through the shared projector (e.g. aggregated
    visual-prompt features, REF-VLM's shared projector). ``proposals`` holds,
    per proposer name, one ``InstanceData(bboxes, scores)`` per image (boxes in
    model-input pixels), each proposer run when first read. A codec's
    ``prepare`` may rewrite ``input_ids``, ``attention_mask`` and ``labels``
    (deferred slots, see :func:`rewrite_tokens`).
    ``generate`` (prediction only) re-prompts the model so multi-pass codecs can
    refine their own output: ``generate(texts, new_conversation=False, rows=None,
    allowed_tokens=None)`` takes one user text per sample (or per index in
    ``rows``) and returns a new view of the answers — continuing each
    conversation after the model's answer, or, with ``new_conversation``, asking
    ``text`` alone (it then holds its own ``<image>``); ``allowed_tokens``
    restricts the answers to those tokens (constrained decoding).
    """

    samples: list[GroundingDataSample]
    rendered: list[Rendered]
    images: torch.Tensor
    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    labels: torch.Tensor | None = None
    image_feats: torch.Tensor | None = None
    image_grid: tuple[int, int] | None = None
    token_grids: list[tuple[int, int]] | None = None
    vision_tokens: torch.Tensor | None = None
    vision_levels: list[torch.Tensor] | None = None
    project: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None
    feature_pyramid: list[torch.Tensor] | None = None
    proposals: Mapping[str, list[Any]] | None = None
    hidden_states: torch.Tensor | None = None
    generated_ids: torch.Tensor | None = None
    generated_hidden_states: torch.Tensor | None = None
    generated_logits: torch.Tensor | None = None
    texts: list[str] | None = None
    generate: Callable[..., ModelView] | None = None
    #: ``(B, T)`` bool, where the image's tokens sit (``None``: the model's
    #: image placeholders). A codec that shows the image in another form — as
    #: discrete code tokens — marks those in ``prepare``, for the model's
    #: codec-neutral per-image-token losses (referent flags).
    image_positions: torch.Tensor | None = None
    #: How many of the batch's training conversations were cut to the
    #: model's ``max_length``.
    truncated: int = 0
    #: Scratch space of the codec between its hooks for this batch (e.g. what
    #: ``prepare`` computed for ``inject``).
    codec_state: dict[str, Any] = field(default_factory=dict)

    @property
    def canvas_hw(self) -> tuple[int, int]:
        """``(H, W)`` of the batch's model-input images. Each sample's input
        (``frame.input_hw``) sits at the top left, zero-padded to the largest
        (all equal for a padded-square frame); normalised decoder geometry is
        in fractions of the canvas, so a pixel means the same in every sample."""
        return tuple(self.images.shape[-2:])

    def input_image(self, row: int) -> torch.Tensor:
        """``(3, h, w)``: sample ``row``'s own model input, without the canvas padding."""
        h, w = self.samples[row].frame.input_hw
        return self.images[row, :, :h, :w]


class Codec(nn.Module):
    """Model side of a codec. Subclasses set the class attributes and override hooks."""

    #: ``"vocab"`` (regions are ordinary tokens) or ``"latent"`` (hidden states decoded).
    kind: ClassVar[str] = "vocab"
    #: Units the codec can output.
    units: ClassVar[tuple[str, ...]] = ("box",)
    #: Model outputs required (subset of :data:`NEEDS`).
    needs: ClassVar[frozenset[str]] = frozenset()
    #: Mean box IoU that encoding ground truth and decoding it back must reach
    #: (the conformance suite checks it; the codec's stated quantization bound).
    min_roundtrip_iou: ClassVar[float] = 0.9
    #: Evaluation-only settings that ``ablate`` also reports for the same
    #: checkpoint: variant name → codec attributes to set (e.g. a pass switched off).
    eval_variants: ClassVar[dict[str, dict[str, Any]]] = {}
    #: Decoders the codec cannot work without (name → config); the model builds
    #: them unless its own ``decoders`` config gives that name.
    default_decoders: ClassVar[dict[str, dict[str, Any]]] = {}
    #: Proposers likewise (name → config); the model gives each the tower's
    #: level channels and strides, and keeps them frozen (they are trained in
    #: their own detection stage, e.g. ``proposers.pretrain.ProposerPretrainer``).
    default_proposers: ClassVar[dict[str, dict[str, Any]]] = {}

    def __init__(self, processor: Processor) -> None:
        super().__init__()
        unknown = self.needs - NEEDS
        if unknown:
            raise ValueError(f"{type(self).__name__}.needs has unknown entries {sorted(unknown)}")
        self.processor = processor

    def attach_vision(self, token_channels: int) -> None:
        """Called once by the model before :meth:`bind` with the width of the
        tower's token map: a codec with modules on image tokens (e.g. a visual
        tokenizer) builds them here, so checkpoints can load into them."""

    def bind(
        self,
        tokenizer: Any,
        hidden_size: int,
        decoders: nn.ModuleDict | None = None,
        proposers: nn.ModuleDict | None = None,
    ) -> None:
        """Called once by the model after special tokens are in ``tokenizer``."""
        self.tokenizer = tokenizer
        self.hidden_size = hidden_size

    def init_token_embeddings(self, embeddings: nn.Embedding) -> None:
        """Called once by the model after :meth:`bind`, before any checkpoint is
        loaded: a codec may set the input-embedding rows of its own special
        tokens (the default leaves the LLM's initialisation)."""

    def prepare(self, view: ModelView) -> None:
        """Image-dependent work before embedding (resolve deferred slots, ...)."""

    def inject(self, embeds: torch.Tensor, view: ModelView) -> torch.Tensor:
        """Write codec embeddings at the codec's placeholder positions."""
        return embeds

    def loss(self, view: ModelView) -> dict[str, torch.Tensor]:
        """Auxiliary losses beside the LM loss."""
        return {}

    def oracle_follow_up(self, sample: GroundingDataSample, answer: str, ask: str) -> str | None:
        """For multi-pass codecs: the ideal answer to the follow-up ``ask`` after
        the first-pass ``answer`` (the encoded ground truth), so ``roundtrip`` can
        measure the ceiling of every pass. ``None``: the codec has one pass."""
        return None

    def oracle_geometry(self, sample: GroundingDataSample, text: str) -> RefTargets | None:
        """For latent codecs: what :meth:`decode` returns for ``text`` (the encoded
        first target group) if every decoder reproduced the ground truth, so
        ``roundtrip`` measures what the text structure alone keeps. ``None``:
        regions are read from the text itself."""
        return None

    def decode(self, view: ModelView) -> list[RefTargets]:
        """Predicted referents per sample; by default parsed from generated text."""
        return [self.processor.parse(t, s) for t, s in zip(view.texts, view.samples, strict=True)]
