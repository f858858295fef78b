# gnd_query (UGLMM) on ShapesRef REC, tiny CPU model: "the red circle
# [GND][GND][GND]", the three hidden states concatenated into one grounding
# embedding that picks one of the decoder's learnable, anchored grounding
# queries by similarity. Tiny-preset choices (the codec's defaults stay the
# paper's; docs/tiny_preset.md): 36 queries (UGLMM's 300 sit 3.7 px apart on
# 64 px), loss weights for a 500-step run instead of eq. (1)'s 7B ones, and
# the pyramid also holds the image tokens the LLM reads.
_base_ = [
    "../_base_/models/tiny_mllm.py",
    "../_base_/datasets/shapesref_rec.py",
    "../_base_/schedules/quick.py",
]
model = dict(
    codec=dict(type="gnd_query", k=3),
    pyramid=dict(image_tokens=True),
    decoders=dict(
        grounding=dict(
            type="GroundingQueryDecoder",
            num_queries=36,
            loss_weights=dict(cls=1.0, bce=1.0, dice=1.0, giou=0.4, l1=1.0),
        )
    ),
)
