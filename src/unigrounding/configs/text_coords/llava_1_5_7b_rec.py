# The text-coordinate baseline on a pretrained VLM: LLaVA-1.5-7B fine-tuned for
# REC on RefCOCO/+/g, its boxes written as normalized text coordinates of the
# padded square (as LLaVA-1.5's own RefCOCO data writes them). LLaVA-1.5's
# instruction-tuning recipe: tower frozen, projector and LLM trained, lr 2e-5,
# 128 conversations per step (16 x 8 GPUs), one epoch.
_base_ = [
    "../_base_/models/mllm_7b.py",
    "../_base_/models/llava_1_5_7b.py",
    "../_base_/schedules/llava_epochs.py",
    "../_base_/datasets/data_roots.py",
    "../_base_/datasets/loaders.py",
]
image_size = 336
model = dict(
    vlm={{_base_.vlm}},
    projector=None,  # the VLM's own
    codec=dict(type="text_coords", decimals=3),
    frozen=("vision.*",),
)
train_dataloader = dict(batch_size=16)
pipeline = [dict(type="PackGroundingSample", image_size=image_size, fill={{_base_.pad_colour}})]
refcoco = dict(
    type="RefCOCODataset", data_root={{_base_.refcoco_root}}, refs_file="refs(unc).json",
    img_dir={{_base_.coco_train2014}}, split="train", task="rec", pipeline=pipeline,
)  # fmt: skip
refcoco_plus = dict(refcoco, data_root={{_base_.refcoco_plus_root}})
refcocog = dict(refcoco, data_root={{_base_.refcocog_root}}, refs_file="refs(umd).json")
train_dataloader.update(
    dataset=dict(type="ConcatDataset", datasets=[refcoco, refcoco_plus, refcocog])
)
val_dataloader = dict(batch_size=8, dataset=dict(refcoco, split="val"))
val_evaluator = [dict(type="RECMetric")]
test_dataloader = val_dataloader
test_evaluator = val_evaluator
