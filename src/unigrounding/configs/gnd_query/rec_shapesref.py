# gnd_query (UGLMM [GND] tokens + grounding query decoder) on ShapesRef REC, tiny CPU model.
_base_ = ["../ablate/gnd_query.py"]  # the tiny preset's choices are explained there
