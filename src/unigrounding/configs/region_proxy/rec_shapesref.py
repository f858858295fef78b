# region_proxy (Groma proxy tokens) on ShapesRef REC, tiny CPU model:
# "<p> the red circle </p> <roi> <r3> </roi>", where <r3> names the fourth
# region of the header "Regions: <r0><region>, ...". Needs the detection stage
# first (configs/region_proxy/proposer_shapesref.py):
#   unigrounding train configs/region_proxy/rec_shapesref.py \
#     --cfg-options model.init_checkpoint=<proposer-stage export>
# (`unigrounding ablate --codecs region_proxy` runs the whole chain.)
_base_ = [
    "../_base_/models/tiny_mllm.py",
    "../_base_/datasets/shapesref_rec.py",
    "../_base_/schedules/quick.py",
]
model = dict(
    # the header follows the question, as the image does in the tiny preset
    # (Groma's header-first order learned less; docs/tiny_preset.md)
    codec=dict(type="region_proxy", header="after_question"),
    proposers=dict(proposer={{_base_.proposer}}),
    # the proposer stays frozen, and so does the tower (as in Groma): a tower
    # that kept learning would move the features the proposer was trained on
    frozen=("vision.*",),
)
