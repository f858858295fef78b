# text_coords in the ablation: 2 decimals (0.01 of the 64 px input = 0.64 px,
# far below the tiny model's error) keeps answers short; Shikra's 3 is the default.
_base_ = ["./base.py"]
model = dict(codec=dict(type="text_coords", decimals=2))
