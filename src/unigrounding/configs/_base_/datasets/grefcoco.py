# gRefCOCO (UNC splits: val, testA, testB; multi- and no-target expressions):
# GRES conversations from a local copy (data_roots.py; refs pickles converted
# once with `unigrounding convert refcoco`). A recipe sets its image size and
# batch (train_dataloader.dataset.pipeline, train_dataloader.batch_size);
# another test split: --cfg-options test_dataloader.dataset.split=...
_base_ = ["./data_roots.py", "./loaders.py"]
grefcoco = dict(
    type="RefCOCODataset",
    data_root={{_base_.grefcoco_root}},
    refs_file="grefs(unc).json",
    img_dir={{_base_.coco_train2014}},
    task="gres",
    pipeline=[dict(type="PackGroundingSample", image_size=336)],
)
train_dataloader = dict(dataset=dict(grefcoco, split="train"))
val_dataloader = dict(dataset=dict(grefcoco, split="val"))
test_dataloader = dict(dataset=dict(grefcoco, split="testA"))
val_evaluator = [dict(type="GRESMetric")]
test_evaluator = val_evaluator
