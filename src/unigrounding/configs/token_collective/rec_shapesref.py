# token_collective (ClawMachine) on ShapesRef REC, tiny CPU model: "Here is
# <ref> the red circle <boi><vis_17><vis_40><eoi>", the codes of the patches
# the object covers, read back to a box by the region sampler; the eq. (1)
# collective metrics beside REC. Needs the proposer and tokenizer stages first
# (configs/region_proxy/proposer_shapesref.py, then
# configs/token_collective/quantizer_shapesref.py from its export):
#   unigrounding train configs/token_collective/rec_shapesref.py \
#     --cfg-options model.init_checkpoint=<tokenizer-stage export>
# (`unigrounding ablate --codecs token_collective` runs the whole chain.)
# The hybrid-perception ablation (Table 9): add
#   --cfg-options model.codec.perception=continuous (or discrete), or run
#   `unigrounding ablate --codecs token_collective --variants`.
_base_ = [
    "../_base_/models/tiny_mllm.py",
    "../_base_/datasets/shapesref_rec.py",
    "../_base_/schedules/quick.py",
]
codebook_size = 256  # ClawMachine / LaVIT: 16384 on 224 px real images
model = dict(
    codec=dict(type="token_collective", codebook_size=codebook_size),
    proposers=dict(proposer={{_base_.proposer}}),
    # the tower and the tokenizer stay frozen (as in ClawMachine): codes from a
    # tower that kept learning would drift from the tokenizer's training
    frozen=("vision.*",),
)
val_evaluator = [dict(type="RECMetric"), dict(type="TokenCollectiveMetric")]
test_evaluator = val_evaluator
