# RefCOCO+ (UNC splits: val, testA, testB):
# REC conversations from a local copy (data_roots.py; refs pickles converted
# once with `unigrounding convert refcoco`). A recipe sets its image size and
# batch (train_dataloader.dataset.pipeline, train_dataloader.batch_size);
# another test split: --cfg-options test_dataloader.dataset.split=...
_base_ = ["./data_roots.py"]
refcoco_plus = dict(
    type="RefCOCODataset",
    data_root={{_base_.refcoco_plus_root}},
    refs_file="refs(unc).json",
    img_dir={{_base_.coco_train2014}},
    task="rec",
)
pipeline = [dict(type="PackGroundingSample", image_size=336)]
loader = dict(num_workers=4, collate_fn=dict(type="grounding_collate"))
train_dataloader = dict(
    **loader,
    batch_size=16,
    persistent_workers=True,
    sampler=dict(type="DefaultSampler", shuffle=True),
    dataset=dict(**refcoco_plus, split="train", pipeline=pipeline),
)
val_dataloader = dict(
    **loader,
    batch_size=16,
    sampler=dict(type="DefaultSampler", shuffle=False),
    dataset=dict(**refcoco_plus, split="val", pipeline=pipeline),
)
test_dataloader = dict(
    **loader,
    batch_size=16,
    sampler=dict(type="DefaultSampler", shuffle=False),
    dataset=dict(**refcoco_plus, split="testA", pipeline=pipeline),
)
val_evaluator = [dict(type="RECMetric")]
test_evaluator = val_evaluator
val_cfg = dict(type="ValLoop")
test_cfg = dict(type="TestLoop")
