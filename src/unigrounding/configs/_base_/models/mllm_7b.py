# What every 7B-class recipe shares (the LLaVA-1.5 layout): the image tokens
# where the conversation's <image> stands, a 2-layer MLP projector without the
# tiny preset's aids (no position embedding, not instruction-aware, no
# referent-flag loss), bf16 autocast over fp32 master weights, gradient
# checkpointing, 2048-token conversations. Each recipe adds the tower, the LLM
# and the codec of its paper.
model = dict(
    type="GroundingMLLM",
    image_placement="as_written",
    referent_flag_weight=0.0,
    projector=dict(merge=1, pos_embed=None, instruction_aware=False),
    precision="bf16",
    gradient_checkpointing=True,
    max_length=2048,
    max_new_tokens=256,
)
