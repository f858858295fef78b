# Qwen2.5-VL-7B-Instruct (8.29 B parameters) as a pretrained VLM backbone: its
# windowed ViT (0.68 B, 14-pixel patches merged 2 x 2 into 28-pixel image
# tokens) and Qwen2.5-7B with 3-D M-RoPE, taken apart by unigrounding.models.vlm.
# `pretrained` names the local HF folder (config.json, weights, tokenizer with
# its chat template, preprocessor_config.json); `config` is its published
# architecture, which only `unigrounding plan` reads when the folder is not on
# this machine (with `image_processor`, the released preprocessor's settings).
vlm = dict(
    pretrained="checkpoints/qwen2.5-vl-7b-instruct",
    config=dict(
        model_type="qwen2_5_vl",
        image_token_id=151655,
        video_token_id=151656,
        vision_start_token_id=151652,
        vision_end_token_id=151653,
        tie_word_embeddings=False,
        vision_config=dict(
            depth=32,
            hidden_act="silu",
            hidden_size=1280,
            intermediate_size=3420,
            num_heads=16,
            in_chans=3,
            out_hidden_size=3584,
            patch_size=14,
            spatial_merge_size=2,
            temporal_patch_size=2,
            window_size=112,
            fullatt_block_indexes=[7, 15, 23, 31],
            tokens_per_second=2,
        ),
        text_config=dict(
            vocab_size=152064,
            hidden_size=3584,
            intermediate_size=18944,
            num_hidden_layers=28,
            num_attention_heads=28,
            num_key_value_heads=4,
            max_position_embeddings=128000,
            rms_norm_eps=1e-6,
            tie_word_embeddings=False,
            rope_parameters=dict(
                rope_type="default", rope_theta=1000000.0, mrope_section=[16, 24, 24]
            ),
        ),
    ),
    image_processor=dict(
        image_processor_type="Qwen2VLImageProcessor",
        image_mean=[0.48145466, 0.4578275, 0.40821073],
        image_std=[0.26862954, 0.26130258, 0.27577711],
        patch_size=14,
        merge_size=2,
        temporal_patch_size=2,
        size=dict(shortest_edge=3136, longest_edge=12845056),
    ),
)
