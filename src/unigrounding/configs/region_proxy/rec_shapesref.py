# region_proxy (Groma proxy tokens) on ShapesRef REC, tiny CPU model.
# Needs the detection stage first (configs/region_proxy/proposer_shapesref.py):
#   unigrounding train configs/region_proxy/rec_shapesref.py \
#     --cfg-options model.init_checkpoint=<proposer-stage export>
_base_ = ["../ablate/region_proxy.py"]
