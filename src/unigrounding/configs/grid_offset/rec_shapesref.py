# grid_offset (GETok) on ShapesRef REC, tiny CPU model: REC conversations plus
# Algorithm 1's refinement conversations; evaluated with the offset pass
# (set model.codec.refine=False for grid-only).
_base_ = ["../ablate/grid_offset.py"]
