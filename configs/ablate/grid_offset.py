# grid_offset (GETok) in the ablation: REC answers as two grid tokens, trained
# together with Algorithm 1's propose-then-refine conversations, so the same
# checkpoint is evaluated grid-only and with the offset pass.
_base_ = ["./base.py"]
n, m = 32, 64
model = dict(
    codec=dict(type="grid_offset", n=n, m=m),
    decoders=dict(point_to_mask=dict(type="ColourRegionGrowing")),
)
_shapes = dict(type="ShapesRefDataset", data_root="data/shapesref", seed=0, n_train=3000, n_val=200)
_pipeline = [dict(type="PackGroundingSample", image_size=64)]
train_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type="ConcatDataset",
        datasets=[
            dict(**_shapes, split="train", task="rec", turns_per_sample=1, pipeline=_pipeline),
            dict(
                type="GridOffsetRefineDataset",
                n=n,
                m=m,
                dataset=dict(**_shapes, split="train", task="res", pipeline=_pipeline),
            ),
        ],
    )
)
