# trp (REF-VLM triplets + DETR-style box decoder) on ShapesRef REC, tiny CPU
# model: REC answers as VD-CoT + one phrase-unit-<REF> triplet, the <REF>
# hidden state decoded over the shared feature pyramid. Two tiny-preset
# choices (the codec's defaults stay REF-VLM's; docs/tiny_preset.md): decoder
# loss weight 0.1 (0.5 let the box loss dominate the clipped gradient), and the
# pyramid also holds the LLM's image tokens, as REF-VLM's decoders read them.
_base_ = [
    "../_base_/models/tiny_mllm.py",
    "../_base_/datasets/shapesref_rec.py",
    "../_base_/schedules/quick.py",
]
model = dict(
    codec=dict(type="trp", loss_weights=dict(box=0.1, mask=0.1)),
    max_new_tokens=64,  # the VD-CoT block makes answers ~37 tokens
    pyramid=dict(image_tokens=True),
)
