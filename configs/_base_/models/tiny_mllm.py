# The tiny CPU preset: a 200k-parameter timm ConvNeXt tower whose stride-8/16/32
# maps are concatenated on the stride-8 grid (8x8 = 64 image tokens at 64 px),
# and a 4-layer Llama from scratch (~1.4M parameters in all). A 2x2 merge
# (16 tokens) was tried and learned REC markedly slower at equal steps.
# The image follows the question (image_placement="after_text") so image tokens
# can compare themselves with the words, and the codec-neutral referent-flag loss
# (models/referent_flags.py) asks them to. Measured with text_coords on the
# quick data: image first 0.407 REC Acc@0.5 (1100 iters, 3 turns x batch 24);
# image after the question 0.453 (1100 iters, 1 turn x batch 40); with the
# better cell pretraining, 0.400 (800 iters) without and 0.427 (900 iters) with
# the flag loss (Acc@0.75 0.13 -> 0.23).
image_size = 64
vision = dict(model_name="test_convnext", out_indices=(1, 2, 3), token_levels=(0, 1, 2))
model = dict(
    type="GroundingMLLM",
    codec=dict(type="text_coords"),
    image_size=image_size,
    tokenizer="shapesref",
    vision=vision,
    projector=dict(merge=1, pos_embed="sincos"),
    llm=dict(
        model_type="llama",
        hidden_size=128,
        intermediate_size=512,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=1024,
    ),
    max_new_tokens=48,
    image_placement="after_text",
    referent_flag_weight=1.0,
)
