# ClawMachine-7B (token collectives, hybrid perception): what its stages share.
# Sources, in the paper (ClawMachine [docs/papers.md]): sec. 2.1 (EVA-CLIP
# tower, LaViT VQ tokenizer, LLaMA-2-7B from LaVIT-2-7B), sec. 2.3 and A.3
# (training), A.6 (region proposer). Stages, in order:
#   clawmachine_7b_stage0_quantizer.py  the visual tokenizer's VQ (our stage)
#   clawmachine_7b_stage1_align.py      projector alignment (sec. 3.4, Table 14)
#   clawmachine_7b_stage2_pretrain.py   alignment pre-training (sec. 2.3, A.2-A.3)
#   clawmachine_7b_stage3_instruct.py   instruction tuning (sec. 2.3, A.2-A.3)
_base_ = [
    "../_base_/models/mllm_7b.py",
    "../_base_/models/llama2_7b.py",
    "../_base_/schedules/llava_epochs.py",
    "../_base_/datasets/data_roots.py",
    "../_base_/datasets/loaders.py",
]
image_size = 224  # A.3: 224 x 224, patch 14: 256 patches
vision = dict(
    model_name="eva_giant_patch14_clip_224",  # EVA-CLIP g/14, "EVA-G/14 (1.0B)" (Table 1)
    checkpoint="checkpoints/eva_giant_patch14_clip_224.safetensors",
)
codebook_size = 16384  # A.3: 32000 text + 16384 visual codes
model = dict(
    image_size=image_size,
    vision=vision,
    llm={{_base_.llm}},
    codec=dict(type="token_collective", codebook_size=codebook_size, perception="hybrid"),
    # A.6: "a switchable region proposer", boxes scored above 0.3 (Co-DETR or
    # YOLOX there; ours: the class-agnostic Deformable DETR, trained on this
    # tower as region_proxy/groma_7b_stage1_detection.py trains it on Groma's;
    # before stage 1, add its tensors to the quantizer's export with
    # unigrounding.engine.export.carry_over(proposer_export, quantizer_export))
    proposers=dict(proposer=dict(type="DeformableDetrProposer", score_threshold=0.3)),
    # A.3: "We freeze the tokenizer" (EVA-CLIP and the VQ layer) in both stages
    frozen=("vision.*", "codec.quantizer.*", "proposers.*"),
    max_length=2048,  # A.3
)
# A.3: a global batch of 256 on 8 A100-80GB with DeepSpeed ZeRO-2 and
# FlashAttention-2; the split into 16 per GPU x 2 accumulation steps is ours
optim_wrapper = dict(accumulative_counts=2)
pipeline = [dict(type="PackGroundingSample", image_size=image_size)]
# The stages' data (A.2, Table 12) where this library reads the source; the
# others are named in each stage
llava_pretrain = dict(
    type="LLaVAShikraDataset", data_root={{_base_.llava_pretrain_root}},
    file="blip_laion_cc_sbu_558k.json", img_dir="images", pipeline=pipeline,
)  # fmt: skip
refcoco_plus_reg = dict(
    type="RefCOCODataset", data_root={{_base_.refcoco_plus_root}}, refs_file="refs(unc).json",
    img_dir={{_base_.coco_train2014}}, split="train", task="reg", pipeline=pipeline,
)  # fmt: skip
refcocog_reg = dict(
    type="RefCOCODataset", data_root={{_base_.refcocog_root}}, refs_file="refs(umd).json",
    img_dir={{_base_.coco_train2014}}, split="train", task="reg", pipeline=pipeline,
)  # fmt: skip
refcoco_plus_rec = dict(refcoco_plus_reg, task="rec")
refcocog_rec = dict(refcocog_reg, task="rec")
visual_genome_reg = dict(
    type="VisualGenomeRegionDataset", data_root={{_base_.visual_genome_root}}, pipeline=pipeline
)
# Evaluation: REC on RefCOCOg val, accuracy at IoU 0.5 (sec. 3.1, Table 3)
val_dataloader = dict(dataset=dict(refcocog_rec, split="val"))
val_evaluator = [dict(type="RECMetric"), dict(type="TokenCollectiveMetric")]
test_dataloader = val_dataloader
test_evaluator = val_evaluator
