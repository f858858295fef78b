# trp on ShapesRef RES: "<Unit>mask</Unit>" triplets, the <REF> hidden state
# decoded by the MaskFormer-style mask decoder (sigmoid focal + Dice).
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
train_dataloader = dict(dataset=dict(_delete_=True, **_res, split="train", turns_per_sample=1))
val_dataloader = dict(dataset=dict(_delete_=True, **_res, split="val", max_samples=300))
test_dataloader = val_dataloader
val_evaluator = [dict(type="RESMetric")]
test_evaluator = val_evaluator
