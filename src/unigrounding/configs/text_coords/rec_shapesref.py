# text_coords (Shikra-style coordinates) on ShapesRef REC, tiny CPU model.
_base_ = [
    "../_base_/models/tiny_mllm.py",
    "../_base_/datasets/shapesref_rec.py",
    "../_base_/schedules/quick.py",
]
model = dict(codec=dict(type="text_coords", decimals=2))  # see configs/ablate/text_coords.py
