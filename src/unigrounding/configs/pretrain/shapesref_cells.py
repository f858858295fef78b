# Stage 0 of the tiny preset: the vision tower learns per-cell category,
# colour and box extent (FCOS-style distances to the box sides) on ShapesRef
# (the stand-in for the CLIP/SigLIP weights a real tower starts from). No LLM, no codec: every codec starts from these features.
# Needs the data first: `unigrounding data shapesref --out data/shapesref`.
_base_ = ["../_base_/models/tiny_mllm.py", "../_base_/schedules/quick.py"]
data_root = "data/shapesref"
model = dict(
    _delete_=True,
    type="CellAttributePretrainer",
    vision={{_base_.vision}},
    attributes=dict(category=6, colour=7),
    box_weight=2.0,
)
train_dataloader = dict(
    batch_size=64,
    num_workers=0,
    sampler=dict(type="InfiniteSampler", shuffle=True),
    collate_fn=dict(type="grounding_collate"),
    dataset=dict(
        type="CocoCellLabelDataset",
        data_root=data_root,
        split="train",
        attributes=dict(
            category=[1, 2, 3, 4, 5],
            colour=["red", "green", "blue", "yellow", "purple", "white"],
        ),
        pipeline=[dict(type="PackCellLabels", image_size=64, cell=8)],
    ),
)
# shape is the slow attribute: 1200 iterations (docs/tiny_preset.md)
max_iters = 1200
lr = 3e-3
train_cfg = dict(type="IterBasedTrainLoop", max_iters=max_iters)
val_cfg = None
test_cfg = None
optim_wrapper = dict(optimizer=dict(type="AdamW", lr=lr, weight_decay=0.01))
param_scheduler = [
    dict(type="OneCycleLR", eta_max=lr, total_steps=max_iters, pct_start=0.1, by_epoch=False),
]
