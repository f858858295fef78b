# region_proxy (Groma) in the ablation: its ShapesRef config, after Groma's
# detection stage (cached like stage 0).
_base_ = ["../region_proxy/rec_shapesref.py"]
ablate_stages = ["region_proxy/proposer_shapesref.py"]
ablate_cost = 1.6  # one iteration next to text_coords' (docs/tiny_preset.md)
