# Epoch-based training of a 7B-class MLLM on GPUs, as LLaVA-1.5 and the
# grounding papers after it train: AdamW, a linear warm-up over the first 3%
# of the iterations, cosine decay to 0, gradient clipping at 1, DeepSpeed
# ZeRO-2 (`unigrounding plan CONFIG --gpus 8` shows the memory per GPU). A
# recipe sets its learning rate, epochs, batch and accumulation; with other
# epochs it restates param_scheduler (its begin/end are in epochs).
max_epochs = 1
warmup_ratio = 0.03
train_cfg = dict(type="EpochBasedTrainLoop", max_epochs=max_epochs, val_interval=max_epochs)
optim_wrapper = dict(
    optimizer=dict(type="AdamW", lr=2e-5, weight_decay=0.0, betas=(0.9, 0.999)),
    clip_grad=dict(max_norm=1.0),
)
param_scheduler = [
    dict(type="LinearLR", start_factor=1e-3, by_epoch=True, begin=0,
         end=warmup_ratio * max_epochs, convert_to_iter_based=True),
    dict(type="CosineAnnealingLR", eta_min=0.0, by_epoch=True, begin=warmup_ratio * max_epochs,
         end=max_epochs, convert_to_iter_based=True),
]  # fmt: skip
strategy = "deepspeed"
deepspeed = dict(zero_stage=2)
default_scope = "unigrounding"
default_hooks = dict(
    timer=dict(type="IterTimerHook"),
    logger=dict(type="LoggerHook", interval=10),
    param_scheduler=dict(type="ParamSchedulerHook"),
    checkpoint=dict(type="AtomicCheckpointHook", interval=2000, by_epoch=False, max_keep_ckpts=2),
    sampler_seed=dict(type="DistSamplerSeedHook"),
)
custom_hooks = [dict(type="SafeCheckpointHook"), dict(type="ExportHook", llm_dtype="bfloat16")]
log_processor = dict(by_epoch=False, window_size=10)
env_cfg = dict(cudnn_benchmark=False, dist_cfg=dict(backend="nccl"))
randomness = dict(seed=0)
log_level = "INFO"
load_from = None
resume = False
