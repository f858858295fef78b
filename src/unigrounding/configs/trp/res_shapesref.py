# trp on ShapesRef RES: "<Unit>mask</Unit>" triplets, the <REF> hidden state
# decoded by the MaskFormer-style mask decoder (sigmoid focal + Dice).
_base_ = [
    "../_base_/models/tiny_mllm.py",
    "../_base_/datasets/shapesref_res.py",
    "../_base_/schedules/quick.py",
]
model = dict(codec=dict(type="trp"), max_new_tokens=64)
