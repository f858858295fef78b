# token_collective (ClawMachine) in the ablation: "Here is <ref> the red circle
# <boi><vis_17><vis_40><eoi>", the codes of the patches the object covers,
# read back to a box by the region sampler. Two stages run first (cached like
# stage 0), each from the previous one's export: region_proxy's proposer
# detection stage (the sampler's proposer) and the visual tokenizer's stage.
# The tower and the tokenizer stay frozen (ClawMachine freezes both): codes
# from a tower that kept learning would drift from the tokenizer's training.
_base_ = ["./base.py"]
codebook_size = 256  # ClawMachine / LaVIT: 16384 on 224 px real images
model = dict(
    codec=dict(type="token_collective", codebook_size=codebook_size),
    proposers=dict(proposer={{_base_.proposer}}),
    frozen=("vision.*",),
)
ablate_stages = ["region_proxy/proposer_shapesref.py", "token_collective/quantizer_shapesref.py"]
# eq. (1): precision / recall / IoU of the generated collectives
ablate_metrics = [dict(type="TokenCollectiveMetric")]
# `unigrounding ablate --codecs token_collective --variants`: the paper's
# Table 9 perception ablation (hybrid is the codec's default).
ablate_variants = {
    "continuous": {"model.codec.perception": "continuous"},
    "discrete": {"model.codec.perception": "discrete"},
}
ablate_cost = 1.7  # quick ablation train seconds next to text_coords (see base.py)
