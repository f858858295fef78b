# grid_offset (GETok) in the ablation: its ShapesRef config; the same
# checkpoint is evaluated grid-only and with the offset pass (the codec's
# evaluation variants). RES (`--task res`) refines mask points instead of box
# corners.
_base_ = ["../grid_offset/rec_shapesref.py"]
ablate_task_overrides = {"res": {"train_dataloader.dataset.datasets.1.box_fraction": 0.0}}
ablate_cost = 1.0  # one iteration next to text_coords' (docs/tiny_preset.md)
# `ablate --rl`: GETok-R1's two GRPO stages after the fine-tuning (grid tokens,
# then offsets), extra rows "grid_offset (GRPO)" and "(GRPO, grid only)"
ablate_rl = ["grid_offset/grpo_grid_shapesref.py", "grid_offset/grpo_offset_shapesref.py"]
