# region_proxy (Groma) in the ablation: its ShapesRef config, after Groma's
# detection stage (cached like stage 0).
_base_ = ["../region_proxy/rec_shapesref.py"]
ablate_stages = ["region_proxy/proposer_shapesref.py"]
# batch 16, so the preset's conversations make twice the updates (1250 in the
# quick preset): over training seeds 0-2 its REC Acc@0.5 spread fell from
# 0.110 to 0.041 and the mean rose; the same change widened every other
# codec's spread (docs/measurements.md, session 21)
train_dataloader = dict(batch_size=16)
ablate_cost = 0.8  # one iteration at batch 16 next to text_coords' at 32 (docs/tiny_preset.md)
