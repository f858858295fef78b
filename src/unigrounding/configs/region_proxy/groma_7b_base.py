# Groma-7B (localized visual tokenization: region proxy tokens): what its
# stages share. Sources, in the paper (Groma [docs/papers.md]): sec. 3.1
# (DINOv2-L/14 at 448, 2x2 token merge, Deformable-DETR proposer on the last
# 4 layers, ROIAlign region encoder on the last 3, Vicuna-7B v1.5), sec. 3.3
# and 5.1 (stages, epochs, proposer settings), Table 1 (data). The paper's
# optimizer settings are in its appendix, which the excerpt lacks: learning
# rates, batches and schedules below are LLaVA-1.5's (alignment: lr 1e-3,
# batch 256; instruction tuning: lr 2e-5, batch 128), our choice. Stages:
#   groma_7b_stage1_detection.py  the proposer (sec. 3.3 "Detection Pretraining")
#   groma_7b_stage2_align.py      projector and region encoder ("Alignment Pretraining")
#   groma_7b_stage3_instruct.py   the LLM unfrozen ("Instruction Finetuning")
_base_ = [
    "../_base_/models/mllm_7b.py",
    "../_base_/models/vicuna_7b_v1_5.py",
    "../_base_/schedules/llava_epochs.py",
    "../_base_/datasets/data_roots.py",
    "../_base_/datasets/loaders.py",
]
image_size = 448  # sec. 3.1 (Table 6 compares 336 and 448)
vision = dict(
    model_name="vit_large_patch14_dinov2",  # DINOv2-L/14 (sec. 5.1)
    checkpoint="checkpoints/vit_large_patch14_dinov2.safetensors",
    model_kwargs=dict(img_size=image_size),
    out_indices=(-4, -3, -2, -1),  # the proposer reads the last 4 layers (sec. 3.1)
    token_levels=(3,),  # the LLM's image tokens: the last layer's
)
# sec. 5.1: 6 encoder and 6 decoder layers, 300 queries, NMS 0.6, score 0.15,
# at most 100 boxes (the proposer's defaults)
proposer = dict(type="DeformableDetrProposer")
model = dict(
    image_size=image_size,
    vision=vision,
    llm={{_base_.llm}},
    # 2x2 neighbouring patches concatenated: 32x32 -> 256 image tokens (sec. 3.1)
    projector=dict(merge=2),
    codec=dict(type="region_proxy"),
    proposers=dict(proposer=proposer),
    # the tower stays frozen in every stage (sec. 3.3), so proposals are cached
    frozen=("vision.*", "proposers.*", "llm.*"),
)
pipeline = [dict(type="PackGroundingSample", image_size=image_size)]
coco_detection = dict(
    type="CocoDetectionDataset", data_root={{_base_.coco2017_root}}, cache=False,
    instances_file="annotations/instances_train2017.json", img_dir="train2017",
    pipeline=pipeline,
)  # fmt: skip
refcoco_rec = dict(
    type="RefCOCODataset", data_root={{_base_.refcoco_root}}, refs_file="refs(unc).json",
    img_dir={{_base_.coco_train2014}}, split="train", task="rec", pipeline=pipeline,
)  # fmt: skip
refcoco_plus_rec = dict(refcoco_rec, data_root={{_base_.refcoco_plus_root}})
refcocog_rec = dict(refcoco_rec, data_root={{_base_.refcocog_root}}, refs_file="refs(umd).json")
refcocog_reg = dict(refcocog_rec, task="reg")
visual_genome_reg = dict(
    type="VisualGenomeRegionDataset", data_root={{_base_.visual_genome_root}}, pipeline=pipeline
)
flickr30k_gcg = dict(
    type="Flickr30kEntitiesDataset", data_root={{_base_.flickr30k_root}}, split="train",
    pipeline=pipeline,
)  # fmt: skip
# Table 1's data both LLM stages read (the ones this library reads)
grounding_mix = [
    flickr30k_gcg, visual_genome_reg, refcocog_reg, refcoco_rec, refcoco_plus_rec, refcocog_rec
]  # fmt: skip
# Evaluation: REC, accuracy at IoU 0.5 (sec. 5.2, Table 2), RefCOCO val here
val_dataloader = dict(dataset=dict(refcoco_rec, split="val"))
val_evaluator = [dict(type="RECMetric")]
test_dataloader = val_dataloader
test_evaluator = val_evaluator
