# grid_offset (GETok) in the ablation: REC answers as two grid tokens, trained
# together with Algorithm 1's propose-then-refine conversations, so the same
# checkpoint is evaluated grid-only and with the offset pass.
# Scale: the paper's n = 32 / m = 64 cut an 840 px image into 26 px cells; on the
# 64 px tiny preset that is 2 px cells (1024 tokens to learn from scratch). Here
# n = 16 (4 px cells, as ShapesRef objects are 8-16 px) and m = 2n as in the
# paper. Measured (harness, REC only, grid-only, 500 iterations): n = 16 reached
# REC Acc@0.5 0.715; the quick ablation with n = 32 and half of the batches
# refinement conversations stayed at 0.04.
# Refinement share, quick ablation (REC Acc@0.5 grid + offset / grid only):
# 1500 conversations, half box corners, half mask points: 0.410 / 0.497;
# 800 conversations, box corners only: 0.537 / 0.617. REC uses the second; RES
# (`--task res`) refines mask points instead (`ablate_task_overrides`).
_base_ = ["./base.py"]
n, m = 16, 32
model = dict(
    codec=dict(type="grid_offset", n=n, m=m),
    decoders=dict(point_to_mask=dict(type="ColourRegionGrowing")),
)
_shapes = dict(type="ShapesRefDataset", data_root="data/shapesref", seed=0, n_train=3000, n_val=200)
_pipeline = [dict(type="PackGroundingSample", image_size=64, cache_images=True)]
train_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type="ConcatDataset",
        datasets=[
            dict(**_shapes, split="train", task="rec", turns_per_sample=1, pipeline=_pipeline),
            # 800 refinement conversations beside 9860 REC ones (~7.5% of the batches)
            dict(
                type="GridOffsetRefineDataset",
                n=n,
                m=m,
                box_fraction=1.0,
                dataset=dict(
                    **_shapes, split="train", task="res", max_samples=800, pipeline=_pipeline
                ),
            ),
        ],
    )
)
ablate_task_overrides = {"res": {"train_dataloader.dataset.datasets.1.box_fraction": 0.0}}
ablate_cost = 1.0  # quick ablation train seconds next to text_coords (see base.py)
