"""The visual tokenizer's own training stage (LaVIT / ClawMachine: the
tokenizer is trained first and then frozen): the frozen vision tower's token
features are quantized and reconstructed.

Parameter names match a grounding model whose codec holds the quantizer as
``codec.quantizer`` (``codec.quantizer.*``), so the exported checkpoint
initialises it through ``init_checkpoint``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from mmengine.model import BaseModel
from torch import nn

from ...models.preprocessor import GroundingDataPreprocessor
from ...models.vlm import build_tower
from ...registry import MODELS
from ...structures import GroundingDataSample
from .quantizer import VisualQuantizer


@MODELS.register_module()
class QuantizerPretrainer(BaseModel):
    """Frozen tower + a trainable :class:`VisualQuantizer` (modes loss / predict).

    Predict writes per sample the codes of its image tokens (raster order,
    ``codes`` metainfo) and the mean cosine between each patch feature and its
    reconstruction from the code (``reconstruction_cos``), for
    :class:`~.metrics.CodebookUsage`.
    """

    def __init__(
        self,
        vision: dict | None = None,
        *,
        quantizer: dict,
        init_checkpoint: str | None = None,
        data_preprocessor: dict | None = None,
        vlm: dict | None = None,
    ) -> None:
        super().__init__(data_preprocessor=data_preprocessor or GroundingDataPreprocessor())
        self.vision = build_tower(vision, vlm)
        self.codec = nn.ModuleDict(
            {"quantizer": VisualQuantizer(self.vision.token_channels, **quantizer)}
        )
        if init_checkpoint is not None:
            from ...engine.export import init_from_pretrained

            init_from_pretrained(self, init_checkpoint)
        self.vision.requires_grad_(False)

    def init_weights(self) -> None:
        """No-op: parts are initialised at construction (see GroundingMLLM)."""

    def train(self, mode: bool = True) -> QuantizerPretrainer:
        super().train(mode)
        self.vision.eval()
        return self

    def forward(
        self, inputs: torch.Tensor, data_samples: list[GroundingDataSample], mode: str = "loss"
    ):
        with torch.no_grad():
            hws = [tuple(s.frame.input_hw) for s in data_samples]
            tokens = self.vision.token_map(self.vision(inputs.to(self.vision.mean.device), hws))
        features = tokens.flatten(2).transpose(1, 2)  # (B, H*W, C), raster order
        quantizer = self.codec["quantizer"]
        if mode == "loss":
            return quantizer.loss(features.reshape(-1, features.shape[-1]))
        if mode == "predict":
            codes = quantizer.encode(features)
            with torch.no_grad():
                q = F.normalize(quantizer.codebook, dim=-1)[codes]
                cos = F.cosine_similarity(quantizer.decoder(q), features, dim=-1).mean(-1)
            for sample, c, r in zip(data_samples, codes, cos, strict=True):
                sample.set_metainfo({"codes": c.tolist(), "reconstruction_cos": float(r)})
            return data_samples
        raise ValueError(f"unknown mode {mode!r}")
