# What one iteration of a codec's own training stage (`ablate_stages`) costs
# next to one of text_coords' fine-tuning; `ablate` only orders its jobs by it
# (docs/tiny_preset.md).
ablate_stage_costs = {
    "region_proxy/proposer_shapesref.py": 2.1,
    "token_collective/quantizer_shapesref.py": 0.36,
}
