# grid_offset (GETok) on ShapesRef RES: masks are answered as segment-critical
# grid points, refined with offsets and decoded by the point-to-mask decoder
# (the dependency-free colour-region decoder here; plugins/sam_point_decoder.py
# for natural images — swapping needs no retraining).
_base_ = ["./rec_shapesref.py"]
_res = dict(
    type="ShapesRefDataset",
    data_root="data/shapesref",
    seed=0,
    n_train=3000,
    n_val=200,
    task="res",
    pipeline=[dict(type="PackGroundingSample", image_size=64)],
)
train_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type="ConcatDataset",
        datasets=[
            dict(**_res, split="train", turns_per_sample=1),
            dict(
                type="GridOffsetRefineDataset",
                n={{_base_.n}},
                m={{_base_.m}},
                dataset=dict(**_res, split="train"),
            ),
        ],
    )
)
val_dataloader = dict(dataset=dict(_delete_=True, **_res, split="val", max_samples=300))
test_dataloader = val_dataloader
val_evaluator = [dict(type="RESMetric")]
test_evaluator = val_evaluator
