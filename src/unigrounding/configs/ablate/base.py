# `unigrounding ablate` for a codec without its own ablation config (a plugin):
# the tiny model on ShapesRef REC with the quick schedule and the codec's
# defaults (`ablate` sets model.codec = dict(type=<name>)). `ablate` overrides
# the data size and the iteration budget per preset, and starts every codec
# from the same cached codec-neutral pretraining.
_base_ = [
    "../_base_/models/tiny_mllm.py",
    "../_base_/datasets/shapesref_rec.py",
    "../_base_/schedules/quick.py",
]
# one iteration's cost next to one of text_coords (docs/tiny_preset.md); it
# only orders the jobs
ablate_cost = 1.0
