# grid_offset (GETok) on ShapesRef REC, tiny CPU model: REC answers as two grid
# tokens, trained together with Algorithm 1's propose-then-refine
# conversations; evaluated with the offset pass (set model.codec.refine=False
# for grid-only). n = 16 (4 px cells, as ShapesRef objects are 8-16 px; the
# paper's n = 32 on 840 px would be 2 px cells here) and m = 2n as in the
# paper; 800 box-corner refinement conversations (docs/tiny_preset.md).
_base_ = [
    "../_base_/models/tiny_mllm.py",
    "../_base_/datasets/shapesref_rec.py",
    "../_base_/schedules/quick.py",
]
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
