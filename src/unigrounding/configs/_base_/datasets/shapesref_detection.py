# Every object box of ShapesRef as class-agnostic detection data (COCO
# instances format), for the stages that train on images alone: the region
# proposer's detection stage and the visual tokenizer's stage.
data_root = "data/shapesref"
pipeline = [dict(type="PackGroundingSample", image_size=64, cache_images=True)]
detection = dict(type="CocoDetectionDataset", data_root=data_root, pipeline=pipeline)
train_dataloader = dict(
    batch_size=32,
    num_workers=0,
    sampler=dict(type="InfiniteSampler", shuffle=True),
    collate_fn=dict(type="grounding_collate"),
    dataset=dict(**detection, split="train"),
)
test_dataloader = dict(
    batch_size=50,
    num_workers=0,
    sampler=dict(type="DefaultSampler", shuffle=False),
    collate_fn=dict(type="grounding_collate"),
    dataset=dict(**detection, split="val"),
)
val_dataloader = test_dataloader
