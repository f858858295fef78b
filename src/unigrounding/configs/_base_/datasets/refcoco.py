# RefCOCO (UNC splits: val, testA, testB):
# REC conversations from a local copy (data_roots.py; refs pickles converted
# once with `unigrounding convert refcoco`). A recipe sets its image size and
# batch (train_dataloader.dataset.pipeline, train_dataloader.batch_size);
# another test split: --cfg-options test_dataloader.dataset.split=...
_base_ = ["./data_roots.py", "./loaders.py"]
refcoco = dict(
    type="RefCOCODataset",
    data_root={{_base_.refcoco_root}},
    refs_file="refs(unc).json",
    img_dir={{_base_.coco_train2014}},
    task="rec",
    pipeline=[dict(type="PackGroundingSample", image_size=336)],
)
train_dataloader = dict(dataset=dict(refcoco, split="train"))
val_dataloader = dict(dataset=dict(refcoco, split="val"))
test_dataloader = dict(dataset=dict(refcoco, split="testA"))
val_evaluator = [dict(type="RECMetric")]
test_evaluator = val_evaluator
