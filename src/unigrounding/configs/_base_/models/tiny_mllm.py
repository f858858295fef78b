# The tiny CPU preset: a 200k-parameter timm ConvNeXt tower whose stride-8/16/32
# maps are concatenated on the stride-8 grid (8x8 = 64 image tokens at 64 px),
# and a 2-layer Llama from scratch (~0.9M parameters in all). A 2x2 merge
# (16 tokens) was tried and learned REC markedly slower at equal steps.
#
# Binding words to image tokens is what a tiny LLM from scratch fails to learn.
# Three parts solve it together: the image follows the question
# (image_placement="after_text"), the referent-flag loss asks every image token
# whether it lies on the referent (models/referent_flags.py), and the projector
# is instruction-aware (each patch sees the question's mean word embedding).
# Measured with text_coords from the cached stage-0 tower, 300 fine-tuning
# iterations at batch 40, 200 ShapesRef val refs (REC Acc@0.5; flag argmax on
# the referent):
#   flags, plain projector                     0.245   125/200
#   flags only, no answer loss                   -     120/200
#   instruction-aware projector, no flags      0.23      -
#   instruction-aware projector + flags        0.45    170/200
#   ... the same, 500 iterations               0.665   182/200
# The LLM's attention alone never learned the comparison (the flag loss stayed
# flat for 800 iterations); a probe given the question directly learned it in
# 300 (92% on val), which is what the instruction-aware projector provides.
#
# Depth: 2 layers learn as fast per step as 4 at 54% of the step time
# (benchmarks/bench_model.py, batch 40: 338 vs 623 ms). Same harness, both
# fixes on, REC Acc@0.5 after 300 / 400 / 500 iterations: 2 layers 0.48 / 0.64 /
# 0.72; 4 layers 0.45 / - / 0.665. Tried and dropped: lr 4e-3 (0.295 at 300
# iterations), and a codec-neutral stage training the flags alone for 300
# iterations before the codec's 200 (flags 182/200 already, REC 0.44: reading
# the position out into the answer is what takes the iterations). Also dropped
# (quick-ablation harness, REC Acc@0.5 for training seeds 0 / 1):
#   - a codec-neutral stage teaching the whole model to say where the object is
#     in words ("top left"; 300 iterations, 61% right on val) before the
#     codec's: text_coords after 300 more iterations at batch 40 0.187 / 0.053
#     (against 0.463 / 0.517 from scratch in 400 at batch 32) — the LLM
#     starts out sure of the wrong answer format (LM loss 4.3 after 50
#     iterations against 2.9 from scratch) and reads positions out no sooner;
#   - fewer conversations per codec: text_coords at batch 32 x 400 iterations
#     0.463 / 0.517, batch 24 x 500 0.440 / 0.607, against 0.650 / 0.637 at
#     batch 40 x 500 (fdaabc7);
#   - MLP 256 instead of 512 at batch 32 x 625 (~15% faster steps with two
#     trainings side by side): text_coords 0.697 / 0.693 against 0.673 /
#     0.653, but trp 0.590 against 0.740 (seed 0).
# Step cost, not tried in training: smaller batches are not cheaper per
# conversation (trp, two benchmarks/bench_model.py runs side by side, one
# thread each: batch 8 45-47, 16 44-50, 32 51 conversations/s), and sdpa is
# the fastest attention here (one layer's shape, forward + backward: sdpa
# 18-24 ms, eager 33-36 ms, the math kernel 29-36 ms).
image_size = 64
# the tower's defaults: its last three stages (strides 8/16/32), all three
# concatenated into the image tokens (a hierarchical tower)
vision = dict(model_name="test_convnext")
# Groma's class-agnostic Deformable-DETR proposer at tiny size (codecs that need
# proposals, and their detection stage, take it from here). Strides 8-64 give
# 85 pyramid positions at 64 px: every one becomes a query (Groma: 300 of a
# larger image). A 4-level stride-4 pyramid (340 positions) ran 3.4x slower
# per step (1.9 vs 0.55 s at batch 32).
proposer = dict(
    type="DeformableDetrProposer",
    dim=64,
    strides=(8, 16, 32, 64),
    num_queries=300,
    encoder_layers=2,
    decoder_layers=2,
    heads=4,
    ffn_dim=256,
)
model = dict(
    type="GroundingMLLM",
    codec=dict(type="text_coords"),
    image_size=image_size,
    vision=vision,
    projector=dict(merge=1, pos_embed="sincos", instruction_aware=True),
    # built from scratch; a config that sets llm=dict(pretrained=DIR) loads
    # that folder instead (with its own tokenizer and chat template)
    llm=dict(
        config=dict(
            model_type="llama",
            hidden_size=128,
            intermediate_size=512,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=4,
            max_position_embeddings=1024,
        )
    ),
    max_new_tokens=48,
    image_placement="after_text",
    referent_flag_weight=1.0,
)
