# Shared setting of `unigrounding ablate`: tiny model, ShapesRef REC, quick schedule.
# `ablate` overrides the codec, the data size and the iteration budget per preset,
# and starts every codec from the same cached codec-neutral pretraining.
_base_ = [
    "../_base_/models/tiny_mllm.py",
    "../_base_/datasets/shapesref_rec.py",
    "../_base_/schedules/quick.py",
]
# The tower arrives pretrained (configs/pretrain/shapesref_cells.py) and stays
# frozen, as in the usual second MLLM stage: every codec reads the same features.
model = dict(freeze_vision=True)
