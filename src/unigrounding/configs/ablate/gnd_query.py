# gnd_query (UGLMM) in the ablation: its ShapesRef config, and UGLMM's Table 5
# in small as a training variant.
_base_ = ["../gnd_query/rec_shapesref.py"]
# `unigrounding ablate --codecs gnd_query --variants`: one [GND] per object
# against the default three
ablate_variants = {"k=1": {"model.codec.k": 1}}
ablate_cost = 1.4  # one iteration next to text_coords' (docs/tiny_preset.md)
