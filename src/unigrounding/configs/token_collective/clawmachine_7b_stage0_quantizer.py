# ClawMachine-7B, stage 0 (ours): the VQ layer that turns EVA-CLIP patch
# features into the 16384 visual codes. ClawMachine takes LaVIT's trained
# tokenizer (sec. 2.1, 3.4); here it is trained from the tower's features on
# COCO train2017 images (QuantizerPretrainer, the tower frozen), 1 epoch at
# lr 1e-3 with a batch of 256 — our choices. Its export is the next stages'
# init_checkpoint.
_base_ = ["./clawmachine_7b_base.py"]
model = dict(
    _delete_=True,
    type="QuantizerPretrainer",
    vision={{_base_.vision}},
    quantizer=dict(codebook_size={{_base_.codebook_size}}, code_dim=32),
)
coco = dict(
    type="CocoDetectionDataset", data_root={{_base_.coco2017_root}}, cache=False,
    instances_file="annotations/instances_train2017.json", img_dir="train2017",
    pipeline={{_base_.pipeline}},
)  # fmt: skip
train_dataloader = dict(batch_size=32, dataset=coco)
optim_wrapper = dict(
    optimizer=dict(lr=1e-3), accumulative_counts=1, clip_grad=None
)  # 32 x 8 GPUs = 256
val_dataloader = None
val_cfg = None
val_evaluator = None
test_dataloader = None
test_cfg = None
test_evaluator = None
