# token_collective (ClawMachine) on ShapesRef REC, tiny CPU model, with the
# eq. (1) collective metrics beside REC. Needs the proposer and tokenizer
# stages first (configs/region_proxy/proposer_shapesref.py, then
# configs/token_collective/quantizer_shapesref.py from its export):
#   unigrounding train configs/token_collective/rec_shapesref.py \
#     --cfg-options model.init_checkpoint=<tokenizer-stage export>
# (`unigrounding ablate --codecs token_collective` runs the whole chain.)
# The hybrid-perception ablation (Table 9): add
#   --cfg-options model.codec.perception=continuous (or discrete), or run
#   `unigrounding ablate --codecs token_collective --variants`.
_base_ = ["../ablate/token_collective.py"]
val_evaluator = [dict(type="RECMetric"), dict(type="TokenCollectiveMetric")]
test_evaluator = val_evaluator
