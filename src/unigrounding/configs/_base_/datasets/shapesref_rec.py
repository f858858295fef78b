# ShapesRef REC, generated into data_root on first use (RefCOCO on-disk format).
data_root = "data/shapesref"
shapesref = dict(type="ShapesRefDataset", data_root=data_root, seed=0, n_train=3000, n_val=200)
# 64 px inputs kept in memory once decoded (12 KB each): decoding was most of
# the data time (docs/tiny_preset.md)
pipeline = [dict(type="PackGroundingSample", image_size=64, cache_images=True)]
# One question per training conversation: the image follows the first question
# only (image_placement="after_text"), so later turns would not see theirs.
# batch 32: cheaper per conversation than 40 with two trainings side by side
train_dataloader = dict(
    batch_size=32,
    num_workers=0,
    sampler=dict(type="InfiniteSampler", shuffle=True),
    collate_fn=dict(type="grounding_collate"),
    dataset=dict(**shapesref, split="train", task="rec", turns_per_sample=1, pipeline=pipeline),
)
val_dataloader = dict(
    batch_size=50,
    num_workers=0,
    sampler=dict(type="DefaultSampler", shuffle=False),
    collate_fn=dict(type="grounding_collate"),
    dataset=dict(**shapesref, split="val", task="rec", max_samples=300, pipeline=pipeline),
)
test_dataloader = val_dataloader
val_evaluator = [dict(type="RECMetric")]
test_evaluator = val_evaluator
