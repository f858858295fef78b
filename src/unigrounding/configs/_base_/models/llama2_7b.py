# A Llama-2-7B-architecture LLM (6.74 B parameters): an HF folder (config.json,
# weights, tokenizer), e.g. Llama-2-7B or LaVIT-2-7B's language model. The
# architecture below is what `unigrounding plan` counts when the folder is
# not on this machine.
llm = dict(
    pretrained="checkpoints/llama-2-7b",
    config=dict(
        model_type="llama",
        vocab_size=32000,
        hidden_size=4096,
        intermediate_size=11008,
        num_hidden_layers=32,
        num_attention_heads=32,
        num_key_value_heads=32,
        max_position_embeddings=4096,
        rms_norm_eps=1e-5,
    ),
)
