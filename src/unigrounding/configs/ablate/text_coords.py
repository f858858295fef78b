# text_coords in the ablation: its ShapesRef config as it is.
_base_ = ["../text_coords/rec_shapesref.py"]
ablate_cost = 1.0  # one iteration next to text_coords' own (docs/tiny_preset.md)
# `ablate --rl`: GRPO after the fine-tuning, an extra row "text_coords (GRPO)"
ablate_rl = ["text_coords/grpo_shapesref.py"]
