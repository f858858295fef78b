# trp (REF-VLM triplets + DETR-style box decoder) on ShapesRef REC, tiny CPU model.
_base_ = [
    "../_base_/models/tiny_mllm.py",
    "../_base_/datasets/shapesref_rec.py",
    "../_base_/schedules/quick.py",
]
model = dict(codec=dict(type="trp"), max_new_tokens=64)  # see configs/ablate/trp.py
