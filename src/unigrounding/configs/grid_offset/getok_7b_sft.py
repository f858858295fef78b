# GETok-7B, SFT (grid and offset tokens; GETok [docs/papers.md] sec. 4.1,
# C.1, Table 12): Qwen2.5-VL-7B-Instruct fine-tuned with LoRA, every image
# resized to 840 x 840 (C.1; a plain resize, A.3), which Qwen2.5-VL's encoder
# reads as 30 x 30 merged 28-pixel image tokens. The RL stages (cold start,
# GRPO) arrive with GETok-R1's issue.
_base_ = [
    "../_base_/models/mllm_7b.py",
    "../_base_/models/qwen2_5_vl_7b.py",
    "../_base_/schedules/llava_epochs.py",
    "../_base_/datasets/data_roots.py",
    "../_base_/datasets/loaders.py",
]
image_size = 840  # C.1: every image resized to 840 x 840 (plain resize, A.3)
n, m = 32, 64  # sec. 4.1: grid size 32, offset size 64
model = dict(
    image_size=image_size,
    frame="resized_square",
    vlm={{_base_.vlm}},
    projector=None,  # the VLM's own (its patch merger)
    chat_template="auto",  # Qwen2.5-VL's own template
    codec=dict(type="grid_offset", n=n, m=m),
    # masks from the generated points by off-the-shelf SAM (sec. 4.2, A.2);
    # needs the segment-anything extra and local SAM weights
    decoders=dict(
        point_to_mask=dict(
            type="SamPointDecoder",
            checkpoint="checkpoints/sam_vit_h_4b8939.pth",
            model_type="vit_h",
        )
    ),
    lora=dict(r=64, alpha=128),  # sec. 4.1: LoRA rank 64; alpha not stated: 2r (our choice)
    # the encoder frozen (not stated: our choice, as LoRA adapts the LM only);
    # SAM stays outside the trained model
    frozen=("vision.*",),
)
custom_imports = dict(
    imports=["unigrounding.plugins.sam_point_decoder"], allow_failed_imports=False
)
# sec. 4.1 / C.1: lr 1e-6, 2 per device x 8 accumulation steps, bf16, DeepSpeed,
# 8 A800; epochs, warm-up, schedule and optimizer not stated: 1 epoch, the
# LLaVA schedule (our choice)
train_dataloader = dict(batch_size=2)
optim_wrapper = dict(optimizer=dict(lr=1e-6), accumulative_counts=8)
pipeline = [dict(type="PackGroundingSample", image_size=image_size, frame="resized_square")]
refcoco = dict(
    type="RefCOCODataset", data_root={{_base_.refcoco_root}}, refs_file="refs(unc).json",
    img_dir={{_base_.coco_train2014}}, split="train", task="rec", pipeline=pipeline,
)  # fmt: skip
refcoco_plus = dict(refcoco, data_root={{_base_.refcoco_plus_root}})
refcocog = dict(refcoco, data_root={{_base_.refcocog_root}}, refs_file="refs(umd).json")
grefcoco = dict(
    refcoco, data_root={{_base_.grefcoco_root}}, refs_file="grefs(unc).json", task="gres"
)
# Table 12's mixed-task corpus, the parts this library reads: RefCOCO/+/g
# referring grounding and segmentation, gRefCOCO, and GETok-Offset (offset
# refinement built on RefCOCO/+/g, C.1-C.2); LLaVA-665K is LLaVA-format
# (LLaVAShikraDataset); COCO-Stuff, ADE20K, VG captions, PACO-LVIS,
# PASCAL-Part and Pixmo-point have no reader here yet.
train_dataloader.update(
    dataset=dict(
        type="ConcatDataset",
        datasets=[
            refcoco,
            refcoco_plus,
            refcocog,
            dict(refcoco, task="res"),
            dict(refcocog, task="res"),
            grefcoco,
            dict(type="GridOffsetRefineDataset", n=n, m=m, dataset=dict(refcoco, task="res")),
            dict(type="GridOffsetRefineDataset", n=n, m=m, dataset=dict(refcocog, task="res")),
        ],
    )
)
# Evaluation: REC on RefCOCO val, Acc@0.5 and Acc@0.8 (the REC table, sec. 4.2)
val_dataloader = dict(batch_size=8, dataset=dict(refcoco, split="val"))
val_evaluator = [dict(type="RECMetric")]
test_dataloader = val_dataloader
test_evaluator = val_evaluator
