# trp (REF-VLM) in the ablation: its ShapesRef config as it is.
_base_ = ["../trp/rec_shapesref.py"]
ablate_cost = 1.65  # one iteration next to text_coords' (docs/tiny_preset.md)
