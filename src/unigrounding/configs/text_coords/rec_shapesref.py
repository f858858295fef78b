# text_coords (Shikra-style coordinates) on ShapesRef REC, tiny CPU model.
_base_ = [
    "../_base_/models/tiny_mllm.py",
    "../_base_/datasets/shapesref_rec.py",
    "../_base_/schedules/quick.py",
]
# 2 decimals: 0.64 px at 64 px input, far below the tiny model's error; Shikra's 3 is the default
model = dict(codec=dict(type="text_coords", decimals=2))
