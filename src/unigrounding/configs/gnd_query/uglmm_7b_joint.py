# UGLMM-7B ([GND] grounding queries): its one joint training stage
# (UGLMM's supplementary material [docs/papers.md] B.1-B.3; the main paper was
# not available to this recipe). CLIP ViT-L/14 at 336 and the grounding encoder frozen, Vicuna-7B
# through LoRA (rank 8, alpha 16), projector, visual-prompt encoder and the
# MaskDINO-style query decoder (300 queries) trained; k = 3 [GND] tokens per
# object; loss weights cls 0.08, bce 0.1, dice 0.1, giou 0.04, l1 0.1 (the
# decoder's defaults). Deviation: UGLMM's decoder reads a separate frozen
# Swin-L grounding encoder at 1024 px; this library has one tower, so it reads
# a pyramid built from CLIP's features and the image tokens.
_base_ = [
    "../_base_/models/mllm_7b.py",
    "../_base_/models/vicuna_7b_v1_5.py",
    "../_base_/schedules/llava_epochs.py",
    "../_base_/datasets/data_roots.py",
    "../_base_/datasets/loaders.py",
]
image_size = 336  # B.3
model = dict(
    image_size=image_size,
    vision=dict(
        model_name="vit_large_patch14_clip_336",
        checkpoint="checkpoints/vit_large_patch14_clip_336.safetensors",
    ),
    llm={{_base_.llm}},
    lora=dict(r=8, alpha=16),
    codec=dict(type="gnd_query", k=3),
    pyramid=dict(image_tokens=True),
    decoders=dict(grounding=dict(type="GroundingQueryDecoder", num_queries=300)),
    frozen=("vision.*",),
)
# B.3: 6 per device, 4 accumulation steps, 32 A100-80GB (a global 768); on 8
# GPUs, 16 accumulation steps keep that batch
train_dataloader = dict(batch_size=6, sampler=dict(type="InfiniteSampler"))
accumulation = 4
# B.3: 30k iterations (optimizer steps, as DeepSpeed's WarmupDecayLR counts
# them: mmengine counts micro-batches, hence x accumulation), AdamW lr 3e-4,
# weight decay 0, betas (0.9, 0.95), WarmupDecayLR with 200 warm-up steps
# (linear warm-up, then linear decay to 0), seed 42
steps = 30000 * accumulation
warmup = 200 * accumulation
train_cfg = dict(_delete_=True, type="IterBasedTrainLoop", max_iters=steps, val_interval=steps)
optim_wrapper = dict(
    optimizer=dict(lr=3e-4, weight_decay=0.0, betas=(0.9, 0.95)),
    accumulative_counts=accumulation,
)
param_scheduler = [
    dict(type="LinearLR", start_factor=1e-3, by_epoch=False, begin=0, end=warmup),
    dict(type="LinearLR", start_factor=1.0, end_factor=0.0, by_epoch=False, begin=warmup,
         end=steps),
]  # fmt: skip
randomness = dict(seed=42)
pipeline = [dict(type="PackGroundingSample", image_size=image_size)]
refcoco = dict(
    type="RefCOCODataset", data_root={{_base_.refcoco_root}}, refs_file="refs(unc).json",
    img_dir={{_base_.coco_train2014}}, split="train", task="rec", pipeline=pipeline,
)  # fmt: skip
refcoco_plus = dict(refcoco, data_root={{_base_.refcoco_plus_root}})
refcocog = dict(refcoco, data_root={{_base_.refcocog_root}}, refs_file="refs(umd).json")
# B.2's joint data, the parts this library reads: RefCOCO/+/g REC, RES and
# region captions, COCO interactive segmentation; COCO Caption, GranD, LLaVA-150k,
# RefCLEF, MUSE, GranDf and COCO Panoptic have no reader here yet
train_dataloader.update(
    dataset=dict(
        type="ConcatDataset",
        datasets=[
            refcoco, refcoco_plus, refcocog,
            dict(refcoco, task="res"), dict(refcoco_plus, task="res"), dict(refcocog, task="res"),
            dict(refcocog, task="reg"), dict(refcoco, task="interactive"),
        ],
    )
)  # fmt: skip
# Evaluation: RES cIoU and REC Acc@0.5 on RefCOCOg val (Table 5)
val_dataloader = dict(batch_size=8, dataset=dict(refcocog, split="val", task="res"))
val_evaluator = [dict(type="RESMetric")]
test_dataloader = val_dataloader
test_evaluator = val_evaluator
