# token_collective (ClawMachine) in the ablation: its ShapesRef config, after
# two stages (cached like stage 0), each from the previous one's export:
# region_proxy's detection stage (the region sampler's proposer) and the
# visual tokenizer's stage.
_base_ = ["../token_collective/rec_shapesref.py"]
ablate_stages = ["region_proxy/proposer_shapesref.py", "token_collective/quantizer_shapesref.py"]
# eq. (1): precision / recall / IoU of the generated collectives
ablate_metrics = [dict(type="TokenCollectiveMetric")]
# `unigrounding ablate --codecs token_collective --variants`: the paper's
# Table 9 perception ablation (hybrid is the codec's default).
ablate_variants = {
    "continuous": {"model.codec.perception": "continuous"},
    "discrete": {"model.codec.perception": "discrete"},
}
ablate_cost = 1.7  # one iteration next to text_coords' (docs/tiny_preset.md)
