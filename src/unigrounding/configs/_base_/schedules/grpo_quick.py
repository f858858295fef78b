# GRPO on the tiny CPU preset (unigrounding.rl): one rollout and one update per
# iteration, 4 questions x 8 sampled answers (the paper's group of 8), KL 1e-2
# to the fine-tuned starting policy (GETok-R1's). Measured on ShapesRef (one
# RL seed each, 200 iterations; docs/measurements.md, session 20):
# - lr: GETok's 1e-6 is a 7B LoRA's; 1e-5 is the best of 1e-6 to 1e-4 here.
#   Adam moves every weight by about the rate at each step, and from 3e-5 up
#   the noise of 32 answers a step undid more of the fine-tuning than the
#   reward taught.
# - temperature: 0.5, not easy-r1's 1.0. At 1.0 a text_coords answer varies in
#   most of its digits at once and RL did not raise Acc@0.75; at 0.3-0.5 it did.
# Constant rate, as easy-r1 runs it (no warm-up). A config adds the policy
# (its fine-tuned export) and the rewards.
_base_ = ["./quick.py"]
max_iters = 200
lr = 1e-5
train_cfg = dict(type="IterBasedTrainLoop", max_iters=max_iters, val_interval=max_iters)
optim_wrapper = dict(
    optimizer=dict(type="AdamW", lr=lr, weight_decay=0.01, betas=(0.9, 0.98), fused=True),
    clip_grad=dict(max_norm=1.0),
)
param_scheduler = []
model = dict(type="GRPOPolicy", num_samples=8, temperature=0.5, top_p=1.0, clip=0.2, kl_coef=0.01)
