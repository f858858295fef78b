# RefCOCOg (UMD splits: val, test):
# REC conversations from a local copy (data_roots.py; refs pickles converted
# once with `unigrounding convert refcoco`). A recipe sets its image size and
# batch (train_dataloader.dataset.pipeline, train_dataloader.batch_size);
# another test split: --cfg-options test_dataloader.dataset.split=...
_base_ = ["./data_roots.py", "./loaders.py"]
refcocog = dict(
    type="RefCOCODataset",
    data_root={{_base_.refcocog_root}},
    refs_file="refs(umd).json",
    img_dir={{_base_.coco_train2014}},
    task="rec",
    pipeline=[dict(type="PackGroundingSample", image_size=336)],
)
train_dataloader = dict(dataset=dict(refcocog, split="train"))
val_dataloader = dict(dataset=dict(refcocog, split="val"))
test_dataloader = dict(dataset=dict(refcocog, split="test"))
val_evaluator = [dict(type="RECMetric")]
test_evaluator = val_evaluator
