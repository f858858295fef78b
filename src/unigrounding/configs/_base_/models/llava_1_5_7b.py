# LLaVA-1.5-7B (llava-hf/llava-1.5-7b-hf, 7.06 B parameters) as a pretrained
# VLM backbone: CLIP ViT-L/14-336 read at its second-to-last layer, the 2-layer
# MLP projector and Vicuna-7B v1.5, taken apart by unigrounding.models.vlm.
# `pretrained` names the local HF folder (config.json, weights, tokenizer,
# preprocessor_config.json); `config` is its published architecture, which
# only `unigrounding plan` reads when the folder is not on this machine.
vlm = dict(
    pretrained="checkpoints/llava-1.5-7b-hf",
    config=dict(
        model_type="llava",
        image_token_index=32000,
        vision_feature_layer=-2,
        vision_feature_select_strategy="default",
        projector_hidden_act="gelu",
        vision_config=dict(
            model_type="clip_vision_model",
            hidden_size=1024,
            intermediate_size=4096,
            num_hidden_layers=24,
            num_attention_heads=16,
            image_size=336,
            patch_size=14,
            projection_dim=768,
        ),
        text_config=dict(
            model_type="llama",
            vocab_size=32064,
            hidden_size=4096,
            intermediate_size=11008,
            num_hidden_layers=32,
            num_attention_heads=32,
            num_key_value_heads=32,
            max_position_embeddings=4096,
            rms_norm_eps=1e-5,
        ),
    ),
)
# CLIP's image mean as LLaVA-1.5 pads (expand2square) with it, in 0-255
pad_colour = (122, 116, 104)
