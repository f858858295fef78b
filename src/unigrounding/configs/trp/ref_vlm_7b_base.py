# REF-VLM-7B (triplet-based referring paradigm, DETR / MaskFormer decoders):
# what its stages share. Sources, in the paper (REF-VLM [docs/papers.md]):
# sec. 3.1 (triplets), 4.1-4.3 (encoders, VPT encoder, decoders, grouped
# matching), App. D and Tables 14-16 (stages, data, optimisation).
# Deviation: REF-VLM concatenates CLIP-ViT-L/14-336 (global features, to the
# LLM) with CLIP-ConvNeXt-L-512 (multi-scale features, to the decoders); this
# library has one tower, so the decoders read a pyramid built from CLIP's
# features and the image tokens (pyramid.image_tokens). Stages:
#   ref_vlm_7b_stage1_align.py     projector alignment (App. D stage 1)
#   ref_vlm_7b_stage2_unified.py   unified multi-task training (App. D stage 2)
# The keypoint and plug-in stage 3 runs are not included.
_base_ = [
    "../_base_/models/mllm_7b.py",
    "../_base_/models/vicuna_7b_v1_5.py",
    "../_base_/schedules/llava_epochs.py",
    "../_base_/datasets/data_roots.py",
    "../_base_/datasets/loaders.py",
]
image_size = 336  # CLIP-large-14-336 (App. D)
model = dict(
    image_size=image_size,
    vision=dict(
        model_name="vit_large_patch14_clip_336",
        checkpoint="checkpoints/vit_large_patch14_clip_336.safetensors",
    ),
    llm={{_base_.llm}},
    codec=dict(type="trp"),
    pyramid=dict(image_tokens=True),
    # the encoders are frozen in every stage (App. D, Table 13 "Freeze Backbone")
    frozen=("vision.*",),
)
# Table 14: 16 per GPU on 64 A800-80GB (a global 1024); on 8 GPUs, 8
# accumulation steps keep that batch (our choice)
# Table 14: AdamW, warm-up ratio 0.03, weight decay 0, max norm 1, bf16; the
# epochs are not stated: 1 (our choice)
optim_wrapper = dict(accumulative_counts=8)
pipeline = [dict(type="PackGroundingSample", image_size=image_size)]
refcoco = dict(
    type="RefCOCODataset", data_root={{_base_.refcoco_root}}, refs_file="refs(unc).json",
    img_dir={{_base_.coco_train2014}}, split="train", task="rec", pipeline=pipeline,
)  # fmt: skip
refcoco_plus = dict(refcoco, data_root={{_base_.refcoco_plus_root}})
refcocog = dict(refcoco, data_root={{_base_.refcocog_root}}, refs_file="refs(umd).json")
refcoco_res, refcocog_res = dict(refcoco, task="res"), dict(refcocog, task="res")
refcocog_reg = dict(refcocog, task="reg")
refcoco_interactive = dict(refcoco, task="interactive")
visual_genome_reg = dict(
    type="VisualGenomeRegionDataset", data_root={{_base_.visual_genome_root}}, pipeline=pipeline
)
flickr30k_gcg = dict(
    type="Flickr30kEntitiesDataset", data_root={{_base_.flickr30k_root}}, split="train",
    pipeline=pipeline,
)  # fmt: skip
# Evaluation: RES cIoU on RefCOCOg (sec. 5.2, Table 8; RefCOCO family in App. F.1)
val_dataloader = dict(dataset=dict(refcocog_res, split="val"))
val_evaluator = [dict(type="RESMetric")]
test_dataloader = val_dataloader
test_evaluator = val_evaluator
