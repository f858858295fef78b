"""``GroundingMLLM``: vision tower + projector + causal LM + one referring codec.

The model never branches on which codec it holds: it renders conversations with
the codec's processor, computes the outputs the codec ``needs``, and calls the
codec hooks (``prepare`` → ``inject`` → LLM → ``loss`` / ``decode``).
"""

from __future__ import annotations

import contextlib
import copy
import fnmatch
import functools
import math
import time
from collections.abc import Callable, Iterator, Mapping

import torch
import torch.nn.functional as F
from mmengine.model import BaseModel
from torch import nn

from ..codecs.base import Codec, ModelView
from ..layers import IGNORE, FeaturePyramid, pad_batch
from ..proposers import build_proposers
from ..proposers.validation import usable_proposals
from ..registry import CODECS, DECODERS, MODELS
from ..structures import IMAGE, INPUT_FRAMES, Frame, GroundingDataSample, input_frame
from .chat import (
    TEMPLATE_TOKENS,
    build_chat_format,
    image_turn_text,
    place_image,
    text_ids,
    truncate,
)
from .generation import (
    AllowedTokens,
    Rollout,
    answer_mask,
    cache_step_kwargs,
    ended_at_stops,
    generation_config,
)
from .llm import add_special_tokens, apply_lora, build_llm, build_tokenizer, fit_vocabulary
from .preprocessor import GroundingDataPreprocessor
from .referent_flags import ReferentFlags
from .vision import Projector, VisionTower
from .vlm import SequencePositions, VLMParts, load_vlm


def freeze_parameters(
    model: nn.Module,
    frozen: tuple[str, ...] | None = (),
    trainable: tuple[str, ...] | None = None,
) -> list[str]:
    """Stop gradients of the parameters ``frozen`` names, or of all that
    ``trainable`` does not (``fnmatch`` patterns over ``named_parameters``);
    returns the frozen names. Parameters already frozen stay frozen."""
    frozen = tuple(frozen or ())
    names = [n for n, _ in model.named_parameters()]
    for pattern in (*frozen, *(trainable or ())):
        if not fnmatch.filter(names, pattern):
            raise ValueError(f"frozen/trainable pattern {pattern!r} matches no parameter")
    stopped = []
    for name, param in model.named_parameters():
        keep = trainable is None or any(fnmatch.fnmatchcase(name, p) for p in trainable)
        if not keep or any(fnmatch.fnmatchcase(name, p) for p in frozen):
            param.requires_grad_(False)
            stopped.append(name)
    return stopped


#: ``precision`` settings and their autocast dtype (``None``: no autocast).
PRECISIONS = {"auto": None, "bf16": torch.bfloat16, "fp16": torch.float16, "fp32": None}


def resolve_precision(precision: str, device_type: str) -> str:
    """``"bf16"``, ``"fp16"`` or ``"fp32"``: what ``precision`` means on a
    device of ``device_type`` (``"auto"``: bf16 on CUDA, fp32 elsewhere)."""
    if precision == "auto":
        return "bf16" if device_type == "cuda" else "fp32"
    return precision


class _OnDemand(Mapping):
    """A read-only mapping whose values are computed on first access."""

    def __init__(self, compute: dict[str, Callable[[], object]]) -> None:
        self._compute, self._values = compute, {}

    def __getitem__(self, key: str) -> object:
        if key not in self._values:
            self._values[key] = self._compute[key]()
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._compute)

    def __len__(self) -> int:
        return len(self._compute)


@MODELS.register_module()
class GroundingMLLM(BaseModel):
    """The shared grounding MLLM (mmengine ``BaseModel``; modes loss/predict/tensor).

    The backbone is either assembled (``vision`` + ``projector`` + ``llm``)
    or a pretrained VLM (``vlm``), taken apart into the same three parts
    (:mod:`~.vlm`); nothing else in the model or the codecs depends on which.

    Args:
        codec: config of a registered codec (``dict(type="text_coords", ...)``).
        vision: :class:`VisionTower` arguments (assembled backbone).
        llm: :func:`~.llm.build_llm` spec: ``pretrained`` (a local folder) or
            ``config`` (built from scratch), plus ``from_pretrained`` options
            (``dtype``, ``attn_implementation``, ...). With ``vlm``: only the
            LM folder of an export (whose VLM is rebuilt from its config);
            otherwise the VLM brings its LM.
        vlm: :func:`~.vlm.load_vlm` spec of a pretrained VLM backbone
            (``dict(pretrained=DIR)``, a LLaVA-style folder), instead of
            ``vision`` and ``projector``; its tokenizer and chat template are
            used unless ``tokenizer`` / ``chat_template`` say otherwise.
        tokenizer: ``None`` (the LLM's own; ShapesRef's for an LLM built from
            a config), ``"shapesref"`` or ``dict(path=local_dir)``. The codec's
            tokens are added to it and the embeddings grown to fit.
        chat_template: how conversations are written
            (:func:`~.chat.build_chat_format`): ``"auto"`` (the tokenizer's own
            template, else Vicuna), ``"vicuna"``, ``"chatml"`` or a Jinja string.
        max_length: longest training conversation in tokens; longer ones are
            cut from the end and counted (logged as ``truncated``). ``None``:
            no limit.
        image_size: side of the square model input of the padded-square frame;
            ``None``: the tower's own input size (e.g. 336 for
            ``vit_large_patch14_clip_336``). Inputs of other sizes (a frame
            without padding, e.g. ``qwen2_5_vl``) get as many image tokens as
            their own size holds (:meth:`token_grid`).
        frame: how an image becomes the model input (:meth:`input_frame`, for
            the API; the data pipeline names the same): ``"auto"`` (the
            tower's own: LLaVA's padded square, Qwen2.5-VL's smart resize) or
            one of :data:`~unigrounding.structures.INPUT_FRAMES` at
            ``image_size`` (e.g. GETok's ``"resized_square"``).
        projector: :class:`Projector` options (``merge``, ``pos_embed``,
            ``instruction_aware``).
        pyramid: :class:`FeaturePyramid` options (built only if the codec needs
            it); ``image_tokens=True`` fuses the projected image tokens the LLM
            reads into every level.
        decoders / proposers: name → config, looked up by the codec in ``bind``
            (added to the codec's ``default_decoders`` / ``default_proposers``).
            Proposers are frozen here: they learn in their own detection stage
            (Groma keeps its proposer fixed after detection pretraining).
        frozen: parameter-name patterns (``fnmatch``, e.g. ``"llm.*"``,
            ``"vision.*"``) whose parameters are not trained — a stage recipe's
            frozen modules (LLaVA-style alignment trains only the projector).
        trainable: parameter-name patterns that alone are trained (everything
            else is frozen); ``None``: all but ``frozen``. A pattern that
            matches no parameter is an error (a typo would freeze nothing).
            Per-module learning rates come from the optimizer config
            (mmengine ``paramwise_cfg=dict(custom_keys={"projector": dict(lr_mult=10)})``).
        max_new_tokens: generation budget per answer.
        attn_implementation: ``auto`` (sdpa, or flash-attention-2 on CUDA) or explicit.
        precision: autocast of the forward pass: ``"auto"`` (bf16 on CUDA, fp32
            elsewhere), ``"bf16"``, ``"fp16"`` or ``"fp32"``, on whatever
            device the model is on. Parameters (the master weights) stay in
            their own dtype, fp32 by default. fp16 needs loss scaling: train it
            with ``optim_wrapper=dict(type="AmpOptimWrapper", ...)`` (CUDA).
        gradient_checkpointing: recompute the LLM's and the tower's blocks in
            the backward pass instead of keeping their activations.
        image_placement: ``"as_written"`` (where the conversation's ``<image>``
            stands; LLaVA puts it before the question) or ``"after_text"``
            (behind the text of its user turn). After the question, every image
            token can attend to the words asked about and mark itself as a match
            — the instruction-aware idea of InstructBLIP's Q-Former, inside the LLM.
        referent_flag_weight: weight of the auxiliary binding loss of
            :mod:`~unigrounding.models.referent_flags` (0 disables it; needs
            ``image_placement="after_text"``). Codec-neutral: it reads only the
            ground truth and the image tokens, never the codec's answer.
        init_checkpoint: exported model to start from (e.g. the shared
            vision-language pretraining); codec tokens added since keep their
            fresh embeddings (:func:`~unigrounding.engine.export.init_from_pretrained`).
        lora: fine-tune the LLM through LoRA adapters instead of fully
            (:func:`~.llm.apply_lora` arguments, e.g. ``dict(r=8, alpha=16)``;
            needs peft); ``None``: full fine-tuning.
    """

    def __init__(
        self,
        codec: dict,
        vision: dict | None = None,
        llm: dict | None = None,
        vlm: dict | None = None,
        image_size: int | None = None,
        frame: str = "auto",
        tokenizer: dict | str | None = None,
        chat_template: str = "auto",
        max_length: int | None = None,
        projector: dict | None = None,
        pyramid: dict | None = None,
        decoders: dict | None = None,
        proposers: dict | None = None,
        frozen: tuple[str, ...] = (),
        trainable: tuple[str, ...] | None = None,
        max_new_tokens: int = 64,
        attn_implementation: str = "auto",
        precision: str = "auto",
        gradient_checkpointing: bool = False,
        image_placement: str = "as_written",
        referent_flag_weight: float = 0.0,
        init_checkpoint: str | None = None,
        lora: dict | None = None,
        data_preprocessor: dict | None = None,
        init_cfg: dict | None = None,
    ) -> None:
        super().__init__(
            data_preprocessor=data_preprocessor or GroundingDataPreprocessor(), init_cfg=init_cfg
        )
        place_image("", image_placement)  # validates
        self.image_placement = image_placement
        if referent_flag_weight and image_placement != "after_text":
            raise ValueError(
                "referent_flag_weight needs image_placement='after_text': image tokens "
                "can only be asked about a question they come after"
            )
        self.referent_flag_weight = referent_flag_weight
        self.codec: Codec = CODECS.build(codec)
        self.max_new_tokens = max_new_tokens
        #: set by the sharding wrappers (FSDP, DeepSpeed ZeRO-3)
        self.lockstep_generation = False
        parts = self._vlm_parts(vlm, vision, projector, llm, attn_implementation)
        llm = dict(llm or {})
        pretrained = llm.get("pretrained") or (parts.folder if parts else None)
        self.tokenizer = build_tokenizer(tokenizer, pretrained, self.codec.processor.words)
        base_vocab = len(self.tokenizer)
        added = add_special_tokens(
            self.tokenizer,
            (IMAGE, *self.codec.processor.special_tokens, *TEMPLATE_TOKENS.get(chat_template, ())),
        )
        markup = parts.image_markup if parts is not None else ("", "")
        self.chat = build_chat_format(self.tokenizer, chat_template, markup)
        self.max_length = max_length
        if parts is not None and parts.llm is not None:
            self.llm = parts.llm
        else:
            self.llm = build_llm(llm, len(self.tokenizer), attn_implementation)
        fit_vocabulary(self.llm, self.tokenizer, base_vocab, pretrained or "built from its config")
        if lora is not None:
            self.llm = apply_lora(self.llm, **lora)
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {sorted(PRECISIONS)}, got {precision!r}")
        self.precision = precision
        #: how the LM is told token positions (Qwen2.5-VL: its M-RoPE inputs)
        self.positions = parts.positions if parts is not None else SequencePositions()
        text_config = self.llm.config.get_text_config()
        hidden = text_config.hidden_size
        self.vision = parts.vision if parts is not None else VisionTower(**vision)
        #: what an export writes to rebuild a VLM backbone's tower and projector
        self.vlm_spec = parts.spec if parts is not None else None
        self.image_size = image_size or self.vision.input_size
        if frame != "auto" and frame not in INPUT_FRAMES:
            raise ValueError(f"frame must be 'auto' or one of {INPUT_FRAMES}, got {frame!r}")
        self.frame = frame
        self.gradient_checkpointing = gradient_checkpointing
        if gradient_checkpointing:
            # non-reentrant: correct with frozen inputs (LoRA, a frozen tower)
            # transformers 5.x's name, else the one it deprecates
            enable = getattr(self.llm, "activation_checkpointing_enable", None)
            (enable or self.llm.gradient_checkpointing_enable)({"use_reentrant": False})
            self.vision.set_grad_checkpointing(True)
        self.codec.attach_vision(self.vision.token_channels)
        if parts is not None:
            self.projector = parts.projector
        else:
            self.projector = Projector(self.vision.token_channels, hidden, **(projector or {}))
        self.pyramid = None
        if "feature_pyramid" in self.codec.needs:
            pyramid = dict(pyramid or {})
            self.pyramid = FeaturePyramid(
                self.vision.channels,
                self.vision.strides,
                token_channels=hidden if pyramid.pop("image_tokens", False) else None,
                **pyramid,
            )
        decoders = {**copy.deepcopy(self.codec.default_decoders), **(decoders or {})}
        self.decoders = nn.ModuleDict({k: DECODERS.build(v) for k, v in decoders.items()})
        proposers = {**copy.deepcopy(self.codec.default_proposers), **(proposers or {})}
        self.proposers = build_proposers(proposers, self.vision).requires_grad_(False)
        self._proposal_cache: dict[str, dict] = {}
        self.register_load_state_dict_post_hook(lambda *_: self._proposal_cache.clear())
        self.codec.bind(self.tokenizer, hidden, self.decoders, self.proposers)
        if set(added) & set(self.codec.processor.special_tokens):
            # rows of a tokenizer that already held the codec's tokens (an
            # export's) are trained: only fresh ones are the codec's to set
            self.codec.init_token_embeddings(self.llm.get_input_embeddings())
        self.image_token_id = self.tokenizer.convert_tokens_to_ids(IMAGE)
        #: side in input pixels of the square one image token covers
        self.token_cell = self.vision.token_stride * self.projector.merge
        #: image tokens of an ``image_size`` square input
        self.num_image_tokens = math.prod(self.token_grid((self.image_size, self.image_size)))
        self.referent_flags = None
        if referent_flag_weight:
            self.referent_flags = ReferentFlags(
                hidden, text_config.num_hidden_layers, self.token_cell
            )
        if init_checkpoint is not None:
            from ..engine.export import init_from_pretrained

            init_from_pretrained(self, init_checkpoint)
        freeze_parameters(self, frozen, trainable)

    @staticmethod
    def _vlm_parts(
        vlm: dict | None,
        vision: dict | None,
        projector: dict | None,
        llm: dict | None,
        attn_implementation: str,
    ) -> VLMParts | None:
        """The VLM backbone's parts, after checking the backbone arguments agree."""
        if vlm is None:
            if vision is None or llm is None:
                raise ValueError("give `vision` and `llm` (an assembled backbone) or `vlm`")
            return None
        if vision is not None or projector is not None:
            raise ValueError(
                "a `vlm` backbone brings its own vision tower and projector: "
                "drop `vision` and `projector` from the model config"
            )
        own_llm = bool(llm and llm.get("pretrained"))
        if own_llm and vlm.get("pretrained"):
            raise ValueError(
                "with `vlm=dict(pretrained=...)` the LM is the VLM's: `llm` names a folder "
                "only for a VLM rebuilt from its config (an export)"
            )
        return load_vlm(vlm, attn_implementation, with_llm=not own_llm)

    def init_weights(self) -> None:
        """No-op: every part is initialised at construction (timm, transformers,
        ``init_checkpoint``). mmengine's default would call transformers'
        ``init_weights`` again and could overwrite loaded weights."""

    # ------------------------------------------------------------------ helpers
    def token_grid(self, input_hw: tuple[int, int]) -> tuple[int, int]:
        """``(rows, cols)`` of image tokens an ``(h, w)`` input gets: the whole
        token cells it holds, from its top left."""
        rows, cols = input_hw[0] // self.token_cell, input_hw[1] // self.token_cell
        if rows < 1 or cols < 1:
            raise ValueError(
                f"a {input_hw[0]}x{input_hw[1]} input holds no {self.token_cell}-pixel image token"
            )
        return rows, cols

    def input_frame(self, ori_hw: tuple[int, int]) -> Frame:
        """How an original ``(H, W)`` image becomes this model's input (the
        frame its data pipeline must use too)."""
        if self.frame == "auto":
            return self.vision.input_frame(ori_hw, self.image_size)
        return input_frame(self.frame, ori_hw, self.image_size)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def _autocast(self):
        device = self.device.type
        dtype = PRECISIONS[resolve_precision(self.precision, device)]
        if dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device, dtype=dtype)

    def model_view(
        self, images: torch.Tensor, samples: list[GroundingDataSample], train: bool
    ) -> ModelView:
        """What the codec sees of this batch (DESIGN.md, the codec contract):
        the rendered and tokenised conversations (padded right with labels
        when ``train``, left for generation otherwise), the images, their
        features, feature pyramid and proposals, after the codec's
        ``prepare``. ``forward`` and ``predict`` start from it; tests and
        tools call it to look at what a codec is given."""
        rendered = [self.codec.processor.format(s) for s in samples]
        grids = [self.token_grid(s.frame.input_hw) for s in samples]
        encoded = [
            self.chat.encode(r.turns, math.prod(g), train, self.image_placement)
            for r, g in zip(rendered, grids, strict=True)
        ]
        truncated = 0
        if train and self.max_length is not None:
            for i, (sample, (ids, labels)) in enumerate(zip(samples, encoded, strict=True)):
                sample_id = str(sample.metainfo.get("sample_id", i))
                *encoded[i], cut = truncate(
                    ids, labels, self.max_length, self.image_token_id, sample_id
                )
                truncated += cut
        ids, mask = pad_batch([e[0] for e in encoded], self.tokenizer.pad_token_id, left=not train)
        labels = None
        if train:
            labels = pad_batch([e[1] for e in encoded], IGNORE, left=False)[0].to(self.device)
        images = images.to(self.device)
        view = ModelView(
            samples, rendered, images, ids.to(self.device), mask.to(self.device), labels
        )
        view.token_grids = grids
        view.truncated = truncated
        feats = self.vision(images, [tuple(s.frame.input_hw) for s in samples])
        instruction = None
        if self.projector.instruction is not None:
            instruction = self._instruction(rendered)
        tokens = self.vision.token_map(feats)
        view.image_feats = self.projector(tokens, instruction)
        view.image_grid = tuple(side // self.projector.merge for side in tokens.shape[-2:])
        if "vision_tokens" in self.codec.needs:
            view.vision_tokens = tokens
        if "vision_levels" in self.codec.needs:
            view.vision_levels = [feats[i] for i in self.vision.token_levels]
        if {"vision_tokens", "vision_levels"} & self.codec.needs:
            view.project = lambda x, rows: self.projector.project(
                x, None if instruction is None else instruction[rows]
            )
        if self.pyramid is not None:
            read = None
            if self.pyramid.reads_tokens:
                read = view.image_feats.transpose(1, 2).unflatten(2, view.image_grid)
            view.feature_pyramid = self.pyramid(feats, view.canvas_hw, read)
        if "proposals" in self.codec.needs:
            view.proposals = self._proposals(feats, samples, view.canvas_hw)
        self.codec.prepare(view)
        return view

    def _proposals(
        self,
        feats: list[torch.Tensor],
        samples: list[GroundingDataSample],
        canvas: tuple[int, int],
    ) -> Mapping:
        """Each proposer's boxes per image, computed when a codec first asks
        (``token_collective`` reads them only to decode). While the tower is
        frozen too (as in Groma), proposals are a fixed function of the image:
        they are cached by image path, so a training epoch that sees an image
        several times runs the proposer on it once. Loading weights clears the
        cache."""
        cacheable = not any(p.requires_grad for p in self.vision.parameters())
        keys = [(s.metainfo.get("image_path"), tuple(s.frame.input_hw)) for s in samples]

        def propose(name: str) -> list:
            cache = self._proposal_cache.setdefault(name, {})
            missing = [
                i for i, k in enumerate(keys) if not cacheable or k[0] is None or k not in cache
            ]
            fresh = {}
            if missing:
                found = self.proposers[name].propose([f[missing] for f in feats], canvas)
                usable = [
                    usable_proposals(f, samples[i].frame.input_hw)
                    for i, f in zip(missing, found, strict=True)
                ]
                fresh = dict(zip(missing, usable, strict=True))
                if cacheable:
                    cache.update({keys[i]: fresh[i] for i in missing if keys[i][0] is not None})
            return [fresh[i] if i in fresh else cache[keys[i]] for i in range(len(keys))]

        return _OnDemand({name: functools.partial(propose, name) for name in self.proposers})

    @torch.no_grad()
    def prepare_samples(
        self, inputs: torch.Tensor, data_samples: list[GroundingDataSample]
    ) -> ModelView:
        """The prediction-time view of a batch: the codec's ``prepare`` has run,
        so image-dependent codec state (e.g. the regions of ``region_proxy``)
        is in the samples' ``codec_state`` (``roundtrip`` measures ceilings on it)."""
        with self._autocast():
            return self.model_view(inputs, data_samples, train=False)

    def _instruction(self, rendered: list) -> torch.Tensor:
        """``(B, D)`` mean input embedding of the words of each image's user turn."""
        ids, mask = pad_batch(
            [text_ids(self.tokenizer, image_turn_text(r.turns)) for r in rendered],
            self.tokenizer.pad_token_id,
            left=False,
        )
        mask = mask.to(self.device).unsqueeze(-1)
        embeds = self.llm.get_input_embeddings()(ids.to(self.device)).float() * mask
        return embeds.sum(1) / mask.sum(1).clamp(min=1)

    def _embed(self, view: ModelView) -> torch.Tensor:
        """Input embeddings with the image and codec features in place. The
        model around the LLM works in fp32 whatever the LLM's dtype (a bf16
        LLM gets its inputs cast at the boundary)."""
        table = self.llm.get_input_embeddings()
        embeds = table(view.input_ids).float()
        is_image = (view.input_ids == self.image_token_id).unsqueeze(-1)
        embeds = embeds.masked_scatter(is_image, self._sample_image_tokens(view).float())
        return self.codec.inject(embeds, view).to(table.weight.dtype)

    def _lm_inputs(self, view: ModelView) -> dict:
        """What the LM takes beside the embeddings to place its tokens (the
        M-RoPE inputs of Qwen2.5-VL; nothing for a plain causal LM)."""
        is_image = view.input_ids == self.image_token_id
        return self.positions.lm_inputs(view.input_ids, is_image, view.token_grids)

    def _sample_image_tokens(self, view: ModelView) -> torch.Tensor:
        """``(sum_b rows_b * cols_b, D)``: each sample's own image tokens (the
        top-left ``token_grids[b]`` of the canvas's), in raster order."""
        feats = view.image_feats
        if all(g == view.image_grid for g in view.token_grids):
            return feats.flatten(0, 1)
        grid = feats.unflatten(1, view.image_grid)
        return torch.cat(
            [grid[b, :r, :c].flatten(0, 1) for b, (r, c) in enumerate(view.token_grids)]
        )

    # ------------------------------------------------------------------ modes
    def forward(
        self, inputs: torch.Tensor, data_samples: list[GroundingDataSample], mode: str = "tensor"
    ):
        with self._autocast():
            if mode == "loss":
                return self.loss(inputs, data_samples)
            if mode == "predict":
                return self.predict(inputs, data_samples)
            if mode == "tensor":
                view = self.model_view(inputs, data_samples, train=True)
                return self.llm(
                    inputs_embeds=self._embed(view),
                    attention_mask=view.attention_mask,
                    **self._lm_inputs(view),
                ).logits
        raise ValueError(f"unknown mode {mode!r}")

    def loss(
        self, inputs: torch.Tensor, data_samples: list[GroundingDataSample]
    ) -> dict[str, torch.Tensor]:
        view = self.model_view(inputs, data_samples, train=True)
        want_hidden = "hidden_states" in self.codec.needs
        # The LM head runs only where some sample has a next-token target (the
        # answers): image and question positions are most of the sequence.
        predicts = (view.labels[:, 1:] != IGNORE).any(0).nonzero().squeeze(1)
        out = self.llm(
            inputs_embeds=self._embed(view),
            attention_mask=view.attention_mask,
            output_hidden_states=want_hidden or self.referent_flags is not None,
            logits_to_keep=predicts,
            **self._lm_inputs(view),
        )
        if want_hidden:
            view.hidden_states = out.hidden_states[-1].float()
        logits = out.logits.float()
        targets = view.labels[:, predicts + 1]
        losses = {
            "loss_lm": F.cross_entropy(
                logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=IGNORE
            )
        }
        if self.referent_flags is not None:
            is_image = view.image_positions
            if is_image is None:
                is_image = view.input_ids == self.image_token_id
            states = tuple(h.float() for h in out.hidden_states)
            flags = self.referent_flags(states, is_image, data_samples, view.token_grids)
            losses["loss_referent_flag"] = self.referent_flag_weight * flags
        losses.update(self.codec.loss(view))
        if self.max_length is not None:
            losses["truncated"] = torch.tensor(float(view.truncated), device=self.device)
        return losses

    @torch.no_grad()
    def predict(
        self, inputs: torch.Tensor, data_samples: list[GroundingDataSample]
    ) -> list[GroundingDataSample]:
        view = self.model_view(inputs, data_samples, train=False)
        self._generate(view)
        return self._decode_answers(view)

    def _decode_answers(
        self, view: ModelView, follow_up: Callable[..., ModelView] | None = None
    ) -> list[GroundingDataSample]:
        """The view's samples with their answers decoded: ``pred_refs`` (in
        original pixels), ``pred_text`` and ``decode_ms`` in their metainfo.
        A codec's follow-up passes go to ``follow_up`` (default: greedy)."""
        view.generate = follow_up or (lambda texts, **kw: self._follow_up(view, texts, **kw))
        start = time.perf_counter()
        preds = [
            refs.fit_to_image(*sample.metainfo["ori_shape"])
            for refs, sample in zip(self.codec.decode(view), view.samples, strict=True)
        ]
        # each sample's share of the batch's decode time; RECMetric divides
        # their sum by the objects decoded
        decode_ms = (time.perf_counter() - start) * 1000 / max(len(preds), 1)
        for sample, refs, text in zip(view.samples, preds, view.texts, strict=True):
            sample.pred_refs = refs
            sample.set_metainfo({"pred_text": text, "decode_ms": decode_ms})
        return view.samples

    @torch.no_grad()
    def sample(
        self,
        inputs: torch.Tensor,
        data_samples: list[GroundingDataSample],
        num_samples: int,
        temperature: float = 1.0,
        top_p: float = 1.0,
        follow_up: bool = False,
    ) -> Rollout:
        """``num_samples`` answers to each sample's question, sampled at
        ``temperature`` with nucleus ``top_p`` (an RL stage's rollout), in a
        row for each question and decoded as :meth:`predict` decodes.

        By default the first answer is sampled and a codec's follow-up passes
        stay greedy. With ``follow_up`` the first answer is greedy (one per
        question, shared by its copies) and the codec's follow-up pass is
        sampled (GETok's offset stage: the refinement of a fixed proposal);
        each copy then holds the follow-up's conversation and, in
        ``metainfo["first_pass_refs"]``, its first answer decoded alone (what a
        refinement reward compares with). A question whose first answer asks
        for no follow-up has no sampled tokens."""
        if temperature <= 0:
            raise ValueError(f"sampling needs a temperature > 0, got {temperature}")
        samples = [s.clone() for s in data_samples for _ in range(num_samples)]
        with self._autocast():
            view = self.model_view(inputs.repeat_interleave(num_samples, 0), samples, False)
            if follow_up:
                return self._sample_follow_up(inputs, data_samples, view, temperature, top_p)
            ids = self._generate(view, temperature=temperature, top_p=top_p)
            return Rollout(self._decode_answers(view), ids, answer_mask(ids, self.chat.stop_ids))

    def _sample_follow_up(
        self,
        inputs: torch.Tensor,
        data_samples: list[GroundingDataSample],
        view: ModelView,
        temperature: float,
        top_p: float,
    ) -> Rollout:
        """:meth:`sample` with ``follow_up``; ``view`` holds the copies."""
        copies = len(view.samples) // len(data_samples)
        first = self.model_view(inputs, [s.clone() for s in data_samples], False)
        self._generate(first)
        view.texts = [t for t in first.texts for _ in range(copies)]
        view.generated_ids = first.generated_ids.repeat_interleave(copies, 0)
        alone = self.codec.decode(view)  # view.generate unset: no follow-up
        sampled = {}

        def sampled_follow_up(texts, new_conversation=False, rows=None, allowed_tokens=None):
            if sampled:
                raise RuntimeError("a follow_up rollout samples one follow-up pass")
            asked, ids, allowed = self._answer_follow_up(
                view, texts, new_conversation, rows, allowed_tokens, temperature, top_p
            )
            sampled.update(
                view=asked,
                rows=list(range(len(view.samples))) if rows is None else list(rows),
                ids=ids,
                allowed=allowed,
            )
            return asked

        decoded = self._decode_answers(view, sampled_follow_up)
        for sample, refs in zip(decoded, alone, strict=True):
            sample.set_metainfo(
                {"first_pass_refs": refs.fit_to_image(*sample.metainfo["ori_shape"])}
            )
        eos = self.tokenizer.eos_token_id
        if not sampled:  # no question asked for a follow-up
            ids = torch.full((len(decoded), 1), eos, device=self.device)
            return Rollout(decoded, ids, torch.zeros_like(ids, dtype=torch.bool))
        rows = sampled["rows"]
        ids = torch.full((len(decoded), sampled["ids"].shape[1]), eos, device=self.device)
        ids[rows] = sampled["ids"]
        mask = torch.zeros_like(ids, dtype=torch.bool)
        mask[rows] = answer_mask(sampled["ids"], self.chat.stop_ids)
        for row, asked_sample in zip(rows, sampled["view"].samples, strict=True):
            decoded[row].conversation = asked_sample.conversation
        return Rollout(decoded, ids, mask, sampled["allowed"])

    def answer_logprobs(
        self,
        inputs: torch.Tensor,
        data_samples: list[GroundingDataSample],
        answer_ids: torch.Tensor,
        temperature: float = 1.0,
        allowed: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``(N, L)`` log-probabilities of each sample's answer ``answer_ids``
        after its conversation (a :class:`Rollout`'s), at the distribution it
        was sampled from (logits over ``temperature``, restricted to
        ``allowed`` ids when the pass was constrained), with gradients;
        positions outside the rollout's ``mask`` hold no meaning."""
        with self._autocast():
            view = self.model_view(inputs, data_samples, train=False)
            answer = answer_mask(answer_ids, self.chat.stop_ids).to(view.attention_mask.dtype)
            ids = torch.cat([view.input_ids, answer_ids], dim=1)
            mask = torch.cat([view.attention_mask, answer], dim=1)
            whole = copy.copy(view)
            whole.input_ids, whole.attention_mask = ids, mask
            out = self.llm(
                inputs_embeds=self._embed(whole),
                attention_mask=mask,
                logits_to_keep=answer_ids.shape[1] + 1,
                **self.positions.padded_inputs(
                    ids, ids == self.image_token_id, view.token_grids, mask
                ),
            )
        logits = out.logits[:, :-1].float() / temperature
        if allowed is not None:
            logits = AllowedTokens(allowed)(answer_ids, logits)
        return torch.log_softmax(logits, dim=-1).gather(2, answer_ids.unsqueeze(-1)).squeeze(-1)

    def _follow_up(
        self,
        view: ModelView,
        texts: list[str],
        new_conversation: bool = False,
        rows: list[int] | None = None,
        allowed_tokens: list[str] | None = None,
    ) -> ModelView:
        """Ask the samples ``rows`` (default: all) one more user turn each: after
        the model's answer, or alone in a new conversation; ``allowed_tokens``
        restricts the answer to those tokens (as the chat template writes
        them, see :meth:`_answer_ids`)."""
        return self._answer_follow_up(view, texts, new_conversation, rows, allowed_tokens)[0]

    def _answer_follow_up(
        self,
        view: ModelView,
        texts: list[str],
        new_conversation: bool = False,
        rows: list[int] | None = None,
        allowed_tokens: list[str] | None = None,
        temperature: float = 0.0,
        top_p: float = 1.0,
    ) -> tuple[ModelView, torch.Tensor, torch.Tensor | None]:
        """:meth:`_follow_up` answered greedily or sampled (``temperature`` >
        0): the answers' view, their ids as generated and the allowed ids
        (``None`` unconstrained)."""
        rows = list(range(len(view.samples))) if rows is None else list(rows)
        samples = []
        for row, text in zip(rows, texts, strict=True):
            sample = view.samples[row]
            ask = [{"role": "user", "text": text}, {"role": "assistant", "text": ""}]
            answered = [*sample.conversation[:-1], {"role": "assistant", "text": view.texts[row]}]
            samples.append(sample.clone())
            samples[-1].conversation = ask if new_conversation else answered + ask
        new_view = self.model_view(view.images[rows], samples, train=False)
        allowed = None if allowed_tokens is None else self._answer_ids(allowed_tokens)
        ids = self._generate(new_view, allowed, temperature, top_p)
        return new_view, ids, allowed

    def _answer_ids(self, tokens: list[str]) -> torch.Tensor:
        """The ids an answer made of ``tokens`` may use: the tokens, the pieces
        the chat template writes around them (an answer is tokenized after a
        space, which a tokenizer may render as a token of its own before a
        special token) and end of sequence."""
        tok = self.tokenizer
        ids = tok.convert_tokens_to_ids(list(tokens))
        unknown = [
            t
            for t, i in zip(tokens, ids, strict=True)
            if i is None or (i == tok.unk_token_id and t != tok.unk_token)
        ]
        if unknown:
            raise ValueError(f"allowed_tokens not in the vocabulary: {unknown}")
        written = {i for t in tokens for i in self.chat.answer_ids(t)}
        stops = self.chat.stop_ids
        return torch.tensor(sorted({*ids, *written, *stops}), device=self.device)

    def _generate(
        self,
        view: ModelView,
        allowed: torch.Tensor | None = None,
        temperature: float = 0.0,
        top_p: float = 1.0,
    ) -> torch.Tensor:
        """Greedy decoding (or sampling, ``temperature`` > 0) through
        transformers' ``generate``; fills the view's generated fields and
        returns the answers' ids as generated. ``allowed``: token ids the answer may use
        (constrained decoding, a logits processor). Any of the chat format's
        stop ids ends an answer and is recorded as EOS in ``generated_ids``
        (every later position too), so codecs find the end one way for every
        template. ``generated_hidden_states[:, i]`` is the last layer's state
        of generated token ``i`` as the LLM reads it back — ``generate`` stops
        before reading the last one, so one more cached step supplies it."""
        eos = self.tokenizer.eos_token_id
        want_hidden = "hidden_states" in self.codec.needs
        want_logits = "generated_logits" in self.codec.needs
        config = generation_config(self.max_new_tokens, self.chat.stop_ids, eos, temperature, top_p)
        if temperature > 0:
            # the image placeholder is input only; sampled, answer_logprobs
            # would read it back as an image position (greedy decoding stays
            # the LLM's own, token for token)
            config.suppress_tokens = [self.image_token_id]
        config.update(
            output_hidden_states=want_hidden,
            output_scores=want_logits,
            return_dict_in_generate=True,
        )
        lm_inputs = self._lm_inputs(view)
        out = self.llm.generate(
            inputs_embeds=self._embed(view),
            attention_mask=view.attention_mask,
            generation_config=config,
            logits_processor=[AllowedTokens(allowed)] if allowed is not None else None,
            synced_gpus=self.lockstep_generation,
            **lm_inputs,
        )
        # given the prompt's ids too, generate returns them before the answer
        prompt = view.input_ids.shape[1] if "input_ids" in lm_inputs else 0
        answers = out.sequences[:, prompt:]
        ids = ended_at_stops(answers, self.chat.stop_ids, eos)
        view.generated_ids = ids
        if want_logits:
            view.generated_logits = torch.stack([step.float() for step in out.scores], dim=1)
        if want_hidden:
            read_back = [step[-1][:, -1] for step in out.hidden_states[1:]]
            mask = torch.cat([view.attention_mask, torch.ones_like(ids)], dim=1)
            last = self.llm(
                input_ids=out.sequences[:, -1:],
                attention_mask=mask,
                position_ids=self.positions.step_positions(self.llm, mask),
                output_hidden_states=True,
                **cache_step_kwargs(self.llm, out),
            )
            read_back.append(last.hidden_states[-1][:, -1])
            view.generated_hidden_states = torch.stack(read_back, dim=1).float()
        view.texts = [self._decode_text(row) for row in ids.tolist()]
        return answers

    def _decode_text(self, ids: list[int]) -> str:
        eos = self.tokenizer.eos_token_id
        if eos in ids:
            ids = ids[: ids.index(eos)]
        return self.tokenizer.decode(ids, skip_special_tokens=False).strip()
