# text_coords in the ablation: its ShapesRef config at a lower peak lr.
_base_ = ["../text_coords/rec_shapesref.py"]
# peak lr 1e-3, not the quick schedule's 2e-3: over training seeds 0-2 its REC
# Acc@0.5 spread fell from 0.060 to 0.029 at a 0.015 lower mean
# (docs/measurements.md, session 21)
optim_wrapper = dict(optimizer=dict(lr=1e-3))
param_scheduler = [
    dict(type="OneCycleLR", eta_max=1e-3, total_steps=2000, pct_start=0.1, by_epoch=False)
]
ablate_cost = 1.0  # one iteration next to text_coords' own (docs/tiny_preset.md)
# `ablate --rl`: GRPO after the fine-tuning, an extra row "text_coords (GRPO)"
ablate_rl = ["text_coords/grpo_shapesref.py"]
