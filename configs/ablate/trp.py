# trp (REF-VLM) in the ablation: REC answers as VD-CoT + one phrase-unit-<REF>
# triplet; the <REF> hidden state is decoded by the DETR-style box decoder over
# the shared feature pyramid (decoder loss weight 0.5, as REF-VLM). The VD-CoT
# block makes answers ~37 tokens, so the generation budget is raised to 64.
_base_ = ["./base.py"]
model = dict(codec=dict(type="trp"), max_new_tokens=64)
