# trp (REF-VLM) in the ablation: REC answers as VD-CoT + one phrase-unit-<REF>
# triplet; the <REF> hidden state is decoded by the DETR-style box decoder over
# the shared feature pyramid. The VD-CoT block makes answers ~37 tokens, so the
# generation budget is raised to 64.
# Two tiny-preset choices (the codec's defaults stay REF-VLM's), measured in the
# quick ablation, REC Acc@0.5 / Acc@0.75 / mIoU (benchmarks/binding_errors.py:
# of 200 answers, boxes on another object than the one named):
#   decoder loss weight 0.5, tower pyramid               0.363 / 0.173 / 0.377  (81)
#   ... the pyramid also holds the LLM's image tokens    0.397 / 0.097 / 0.390  (66)
#   decoder loss weight 0.1                              0.410 / 0.160 / 0.406  (61)
#   weight 0.1 + image tokens in the pyramid             0.553 / 0.187 / 0.480
# REF-VLM concatenates its global encoder's features (the ones the LLM reads)
# with the multi-scale ones before the decoders (pyramid.image_tokens). With
# weight 0.5 the box loss dominated the clipped gradient, and the binding
# losses (LM, referent flags) moved little.
_base_ = ["./base.py"]
model = dict(
    codec=dict(type="trp", loss_weights=dict(box=0.1, mask=0.1)),
    max_new_tokens=64,
    pyramid=dict(image_tokens=True),
)
ablate_cost = 1.65  # quick ablation train seconds next to text_coords (see base.py)
