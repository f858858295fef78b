# ClawMachine's visual tokenizer stage (LaVIT-style VQ layer) on the tiny
# preset: the frozen, cell-pretrained tower's 8x8 token features are quantized
# and reconstructed. Reports codebook usage, perplexity and reconstruction
# cosine on ShapesRef val. Start from the stage-0 tower:
#   unigrounding train configs/token_collective/quantizer_shapesref.py \
#     --cfg-options model.init_checkpoint=<stage-0 export>
# The tiny preset uses 256 codes (ClawMachine / LaVIT: 16384 for 224 px real
# images); what 300 iterations reach: docs/tiny_preset.md.
_base_ = [
    "../_base_/models/tiny_mllm.py",
    "../_base_/datasets/shapesref_detection.py",
    "../_base_/schedules/quick.py",
]
codebook_size = 256
model = dict(
    _delete_=True,
    type="QuantizerPretrainer",
    vision={{_base_.vision}},
    quantizer=dict(codebook_size=codebook_size, code_dim=32),
)
train_dataloader = dict(batch_size=64)
test_evaluator = [dict(type="CodebookUsage", codebook_size=codebook_size)]
val_evaluator = test_evaluator
max_iters = 300
lr = 1e-3
train_cfg = dict(type="IterBasedTrainLoop", max_iters=max_iters, val_interval=max_iters)
optim_wrapper = dict(optimizer=dict(type="AdamW", lr=lr, weight_decay=0.0))
param_scheduler = [
    dict(type="OneCycleLR", eta_max=lr, total_steps=max_iters, pct_start=0.1, by_epoch=False),
]
