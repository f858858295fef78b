"""segment-anything's mask decoder driven by ``<REF>`` embeddings (REF-VLM's
external "Stage3-SAM" plugin, the way LISA prompts SAM with a hidden state).

Load it from a config in place of the default mask decoder::

    custom_imports = dict(imports=["unigrounding.plugins.sam_ref_decoder"], allow_failed_imports=False)
    model = dict(decoders=dict(mask=dict(
        type="SamRefDecoder", checkpoint="/path/to/sam_vit_b_01ec64.pth", model_type="vit_b")))

The codec's learned projection (``trp``'s ``query_proj``) maps each ``<REF>``
hidden state into SAM's prompt space (``dim`` = SAM's prompt embedding width),
where it is one sparse prompt token; SAM's frozen image encoder embeds the
model-input image and SAM's mask decoder — trained on, as in REF-VLM's stage 3
and LISA — predicts the mask. Its low-resolution logits are resampled to the
stride-4 grid every mask decoder of this library predicts on, so losses,
matching and decoding are those of :class:`unigrounding.decoders.MaskDecoder`.
The image encoder's weights stay out of the module tree (and so out of our
checkpoints); the prompt encoder's and mask decoder's are ours to train.
Needs the ``sam`` extra (``pip install -e ".[sam]"``).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from unigrounding.decoders.query_decoders import MaskUnit, mask_grid
from unigrounding.registry import DECODERS


@DECODERS.register_module()
class SamRefDecoder(MaskUnit, nn.Module):
    """Args:
    checkpoint: local SAM weights (``sam_vit_b_01ec64.pth`` ...).
    model_type: ``vit_b`` / ``vit_l`` / ``vit_h`` (``segment_anything.sam_model_registry``).
    sam: an already built ``Sam`` instead of a checkpoint (tests, SAM variants).
    focal_weight / dice_weight: as :class:`~unigrounding.decoders.MaskDecoder`.
    """

    def __init__(
        self,
        checkpoint: str | None = None,
        model_type: str = "vit_b",
        sam: nn.Module | None = None,
        **loss_weights,
    ) -> None:
        super().__init__(**loss_weights)
        from segment_anything import sam_model_registry

        if sam is None:
            if checkpoint is None or not Path(checkpoint).is_file():
                raise FileNotFoundError(f"SAM checkpoint not found: {checkpoint!r}")
            sam = sam_model_registry[model_type](checkpoint=checkpoint)
        encoder = sam.image_encoder.eval().requires_grad_(False)
        self.__dict__["image_encoder"] = encoder  # frozen, not saved with our weights
        self.prompt_encoder, self.mask_decoder = sam.prompt_encoder, sam.mask_decoder
        self.register_buffer("pixel_mean", sam.pixel_mean.clone(), persistent=False)
        self.register_buffer("pixel_std", sam.pixel_std.clone(), persistent=False)
        self.dim = sam.prompt_encoder.embed_dim

    @torch.no_grad()
    def _embed_images(self, images: torch.Tensor) -> torch.Tensor:
        encoder = self.image_encoder.to(images.device)
        x = F.interpolate(
            images.float(), size=(encoder.img_size, encoder.img_size), mode="bilinear"
        )
        return encoder((x - self.pixel_mean) / self.pixel_std)

    def forward(self, queries: torch.Tensor, pyramid, images: torch.Tensor) -> torch.Tensor:
        """``(B, Q, dim)`` prompt tokens and ``(B, 3, H, W)`` uint8 images →
        ``(B, Q, h * w)`` mask logits on their stride-4 grid (:func:`mask_grid`)."""
        embeddings = self._embed_images(images)
        grid = mask_grid(tuple(images.shape[-2:]))
        dense_pe = self.prompt_encoder.get_dense_pe()
        no_mask = self.prompt_encoder.no_mask_embed.weight.reshape(1, -1, 1, 1)
        out = []
        for b in range(len(queries)):
            sparse = queries[b][:, None]  # one prompt token per <REF>
            dense = no_mask.expand(len(sparse), -1, *embeddings.shape[-2:])
            low_res, _ = self.mask_decoder(
                image_embeddings=embeddings[b : b + 1],
                image_pe=dense_pe,
                sparse_prompt_embeddings=sparse,
                dense_prompt_embeddings=dense,
                multimask_output=False,
            )
            out.append(F.interpolate(low_res, size=grid, mode="bilinear").flatten(1))
        return torch.stack(out)
