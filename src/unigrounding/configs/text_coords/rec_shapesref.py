# text_coords (Shikra-style coordinates) on ShapesRef REC, tiny CPU model.
_base_ = [
    "../_base_/models/tiny_mllm.py",
    "../_base_/datasets/shapesref_rec.py",
    "../_base_/schedules/quick.py",
]
# 2 decimals: 0.64 px at 64 px input, far below the tiny model's error; Shikra's 3 is the default
model = dict(codec=dict(type="text_coords", decimals=2))
# gradient clip at 1, not the quick schedule's 5: this codec's answer is the
# LM's own tokens, and its seed spread grew at 5 (docs/measurements.md, session 16)
optim_wrapper = dict(clip_grad=dict(max_norm=1.0))
