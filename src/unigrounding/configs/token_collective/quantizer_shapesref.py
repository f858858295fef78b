# ClawMachine's visual tokenizer stage (LaVIT-style VQ layer) on the tiny
# preset: the frozen, cell-pretrained tower's 8x8 token features are quantized
# and reconstructed. Reports codebook usage, perplexity and reconstruction
# cosine on ShapesRef val. Start from the stage-0 tower:
#   unigrounding train configs/token_collective/quantizer_shapesref.py \
#     --cfg-options model.init_checkpoint=<stage-0 export>
# The tiny preset uses 256 codes (ClawMachine / LaVIT: 16384 for 224 px real images).
# Measured from the cached stage-0 tower, 300 iterations (~2.5 min): 51 of 256
# codes in use on ShapesRef val (usage 0.199), perplexity 25.2, reconstruction
# cosine 0.945 — ShapesRef patches are mostly background and a few
# shape/colour combinations.
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
ablate_cost = (
    0.36  # seconds per iteration next to a text_coords fine-tuning one (configs/ablate/base.py)
)
