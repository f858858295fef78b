# gnd_query (UGLMM) in the ablation: "the red circle [GND][GND][GND]", the three
# hidden states concatenated into one grounding embedding that picks one of the
# decoder's learnable, anchored grounding queries by similarity.
# Three choices for the tiny preset (the codec's defaults stay the paper's):
# * K_q: UGLMM's 300 queries cover a 1024 px image; on 64 px they sit 3.7 px
#   apart, many on every object. 36 (a 6 x 6 anchor grid, 10.7 px apart):
#   with one target per REC image, each query is matched — and its box
#   trained — once per K_q samples, so fewer queries learn tighter boxes.
# * eq. (1) weights (0.08 / 0.1 / 0.1 / 0.04 / 0.1 next to the LM loss) suit a
#   7B model fine-tuned for days; in 500 steps the query similarity barely
#   moves. Here cls / bce / dice / giou / l1 = 1 / 1 / 1 / 0.4 / 1.
# * The decoder's feature pyramid also holds the image tokens the LLM reads
#   (pyramid.image_tokens; REF-VLM / UGLMM decoders read the encoder features
#   the LLM is given too).
# Harness (text_coords' schedule, 500 iterations, 200 val refs), REC Acc@0.5:
# K 300 + paper weights 0.17; K 64 + paper weights 0.31; K 64 + these 0.55;
# the same with k = 1 [GND] per object 0.495 (UGLMM's Table 5: more is better).
# Quick ablation, REC Acc@0.5 / Acc@0.75 / mIoU (benchmarks/binding_errors.py,
# of 200: box on the target / on another object / neither):
#   K 64, tower pyramid                        0.447 / 0.097 / 0.426  (81 / 43 / 76)
#   K 64, image tokens in the pyramid          0.477 / 0.113 / 0.447  (89 / 31 / 80)
#   ... and query classification weight 3      0.440 / 0.093 / 0.402
#   K 36, image tokens in the pyramid          0.627 / 0.213 / 0.526  (123 / 41 / 36)
_base_ = ["./base.py"]
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
# `unigrounding ablate --codecs gnd_query --variants`: UGLMM's Table 5 in small,
# one [GND] per object against the default three.
ablate_variants = {"k=1": {"model.codec.k": 1}}
ablate_cost = 1.4  # quick ablation train seconds next to text_coords (see base.py)
