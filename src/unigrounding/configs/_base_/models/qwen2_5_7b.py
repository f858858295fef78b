# Qwen2.5-7B-Instruct (7.62 B parameters; the language model of Qwen2.5-VL-7B):
# an HF folder (config.json, weights, tokenizer with its ChatML template). The
# architecture below is what `unigrounding plan` counts when the folder is
# not on this machine.
llm = dict(
    pretrained="checkpoints/qwen2.5-7b-instruct",
    config=dict(
        model_type="qwen2",
        vocab_size=152064,
        hidden_size=3584,
        intermediate_size=18944,
        num_hidden_layers=28,
        num_attention_heads=28,
        num_key_value_heads=4,
        max_position_embeddings=32768,
        rope_theta=1000000.0,
        rms_norm_eps=1e-6,
        tie_word_embeddings=False,
    ),
)
