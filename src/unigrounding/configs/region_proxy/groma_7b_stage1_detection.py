# Groma-7B, stage 1: detection pretraining (sec. 3.3, 5.1, Table 1). Only the
# class-agnostic Deformable-DETR proposer learns, on frozen DINOv2 features,
# 12 epochs. Data (Table 1): COCO, Objects365, OpenImages, V3Det and a 2M
# SA-1B subset as boxes; COCO-format ones (COCO, Objects365, V3Det) read with
# CocoDetectionDataset — COCO below. lr 2e-4, batch 64, weight decay 1e-4,
# clipping 0.1 and the step decay at epoch 11 are Deformable DETR's own
# (scaled to 12 epochs), our choice: the paper defers them to its appendix.
_base_ = ["./groma_7b_base.py"]
model = dict(
    _delete_=True,
    type="ProposerPretrainer",
    vision={{_base_.vision}},
    proposer={{_base_.proposer}},
)
train_dataloader = dict(batch_size=8, dataset={{_base_.coco_detection}})  # x 8 GPUs
optim_wrapper = dict(optimizer=dict(lr=2e-4, weight_decay=1e-4), clip_grad=dict(max_norm=0.1))
max_epochs = 12
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
param_scheduler = [dict(type="MultiStepLR", milestones=[11], gamma=0.1, by_epoch=True)]
strategy = "ddp"  # the proposer alone is small
val_dataloader = dict(
    dataset=dict(
        _delete_=True, type="CocoDetectionDataset", data_root={{_base_.coco2017_root}},
        instances_file="annotations/instances_val2017.json", img_dir="val2017",
        pipeline={{_base_.pipeline}},
    )
)  # fmt: skip
val_evaluator = [dict(type="ProposalRecall", ks=(10, 100), iou=0.5)]
test_dataloader = val_dataloader
test_evaluator = val_evaluator
