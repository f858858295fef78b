# region_proxy (Groma) in the ablation: "<p> the red circle </p> <roi> <r3> </roi>",
# where <r3> names the fourth region of the header "Regions: <r0><region>, ...".
# Its proposer is trained first in Groma's detection stage (ablate_stages,
# cached like stage 0) and stays frozen; so does the tower (Groma freezes its
# image encoder throughout): a tower that kept learning would move the features
# the proposer was trained on.
_base_ = ["./base.py"]
# The header follows the question (header="after_question"), as the image does
# in the tiny preset: region tokens then come after the words they are asked
# about. Groma's order (header first) reached REC Acc@0.5 0.350 in the quick
# ablate with proposals at recall@100 0.876.
model = dict(
    codec=dict(type="region_proxy", header="after_question"),
    proposers=dict(proposer={{_base_.proposer}}),
    frozen=("vision.*",),
)
ablate_stages = ["region_proxy/proposer_shapesref.py"]
ablate_cost = 1.6  # quick ablation train seconds next to text_coords (see base.py)
