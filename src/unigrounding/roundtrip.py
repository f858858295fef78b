"""Codec accuracy ceiling: encode ground truth, decode it back as if the model
had produced the ideal output, and measure what survives."""

from __future__ import annotations

import time

import numpy as np
import torch

from .codecs.base import Codec, ModelView
from .evaluation.grounding import union_mask
from .structures import GroundingDataSample, RefTargets, metric_box_iou


def prepared_samples(model, items: list[dict], batch_size: int = 50) -> list[GroundingDataSample]:
    """The samples of dataset ``items`` after the model's ``prepare`` pass:
    image-dependent codec state (e.g. ``region_proxy``'s regions) lands in
    their ``codec_state``, so the ceiling is measured on what the model would see."""
    samples = [item["data_samples"] for item in items]
    model.eval()
    for i in range(0, len(items), batch_size):
        chunk = items[i : i + batch_size]
        model.prepare_samples(
            torch.stack([x["inputs"] for x in chunk]), samples[i : i + batch_size]
        )
    return samples


def roundtrip(
    codec: Codec, tokenizer, samples: list[GroundingDataSample], progress: bool = False
) -> dict:
    """Encode each sample's first target group, parse it back, compare
    (``progress``: with a progress bar).

    Returns the DESIGN.md section 7 ``roundtrip`` fields; ``mask_iou_mean`` is
    ``None`` when the codec's output carries no masks.
    """
    ious, first_pass, mask_ious, tokens, objects, most = [], [], [], 0, 0, 0.0
    encode_s = decode_s = 0.0
    from tqdm import tqdm

    for s in tqdm(samples, desc="roundtrip", unit="sample", disable=not progress):
        target = s.gt_refs.group(0)
        if len(target) == 0:
            continue
        start = time.perf_counter()
        text = codec.processor.encode(target, s, "target")
        encode_s += time.perf_counter() - start
        start = time.perf_counter()
        decoded = codec.oracle_geometry(s, text)
        if decoded is None:
            decoded = codec.processor.parse(text, s)
        if codec.oracle_follow_up(s, text, "") is not None:
            first_pass.extend(_ious(decoded, target))
            decoded = _oracle_decode(codec, s, text)
        decode_s += time.perf_counter() - start
        count = len(tokenizer(text, add_special_tokens=False).input_ids)
        tokens, objects = tokens + count, objects + len(target)
        most = max(most, count / len(target))
        ious.extend(_ious(decoded, target))
        if "masks" in decoded and "masks" in target:
            hw = tuple(s.ori_shape)
            pred, gt = union_mask(decoded, hw, False), union_mask(target, hw, False)
            mask_ious.append(np.logical_and(pred, gt).sum() / max(np.logical_or(pred, gt).sum(), 1))
    ious_a = np.array(ious)
    extra = {"first_pass_box_iou_mean": float(np.mean(first_pass))} if first_pass else {}
    return {
        **extra,
        "n": len(ious),
        "box_iou_mean": float(ious_a.mean()) if len(ious_a) else None,
        "box_acc@0.5": float((ious_a >= 0.5).mean()) if len(ious_a) else None,
        "mask_iou_mean": float(np.mean(mask_ious)) if mask_ious else None,
        "tokens_per_object": tokens / objects if objects else None,
        "tokens_per_object_max": most if objects else None,
        "encode_ms_per_object": 1000 * encode_s / objects if objects else None,
        "decode_ms_per_object": 1000 * decode_s / objects if objects else None,
    }


def _ious(decoded: RefTargets, target: RefTargets) -> list[float]:
    """Per target instance, the box IoU with the decoded instance in its place (0 if none)."""
    n = min(len(decoded), len(target))
    ious = metric_box_iou(decoded.boxes[:n], target.boxes[:n], paired=True).tolist()
    return ious + [0.0] * (len(target) - n)


def _oracle_decode(codec: Codec, sample: GroundingDataSample, text: str) -> RefTargets:
    """The codec's own multi-pass decode, with every follow-up answered ideally."""

    def generate(asks: list[str], **_) -> ModelView:
        answers = [codec.oracle_follow_up(sample, text, ask) for ask in asks]
        return ModelView([sample], [], None, None, None, texts=answers)

    view = ModelView([sample], [], None, None, None, texts=[text], generate=generate)
    return codec.decode(view)[0]
