# The tiny CPU preset: a 200k-parameter timm ConvNeXt tower (8x8 = 64 image
# tokens at 64 px) and a 2-layer Llama from scratch, ~0.9M parameters in all.
# Why each part is as it is, with the measurements: docs/tiny_preset.md.
image_size = 64
# the tower's defaults: its last three stages (strides 8/16/32), all three
# concatenated into the image tokens (a hierarchical tower)
vision = dict(model_name="test_convnext")
# Groma's class-agnostic Deformable-DETR proposer at tiny size (codecs that need
# proposals, and their detection stage, take it from here); strides 8-64 give
# 85 pyramid positions at 64 px, every one a query.
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
    # the tower keeps training with the LLM (freezing it lost accuracy);
    # codecs whose proposer or visual tokenizer read its features freeze it
    frozen=(),
)
