# Groma-7B, stage 2: alignment pretraining (sec. 3.3, 5.1, Table 1). The MLP
# projector and the region encoder learn (here the region encoder is the
# projector applied to ROIAlign features, so the projector is all); tower,
# proposer and LLM frozen. 2 epochs. Data (Table 1): Flickr30k Entities
# grounded captions, Visual Genome and RefCOCOg region captions, RefCOCO/+/g
# REC; ShareGPT-4V-PT captions are LLaVA-format (LLaVAShikraDataset), GRIT-20m
# has no reader here yet. lr 1e-3 at batch 256 (LLaVA-1.5's), our choice.
_base_ = ["./groma_7b_base.py"]
model = dict(init_checkpoint="work_dirs/groma_7b_stage1_detection/export")
train_dataloader = dict(dataset=dict(type="ConcatDataset", datasets={{_base_.grounding_mix}}))
optim_wrapper = dict(optimizer=dict(lr=1e-3), accumulative_counts=2)  # 16 x 8 GPUs x 2 = 256
max_epochs = 2
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
param_scheduler = [
    dict(type="LinearLR", start_factor=1e-3, by_epoch=True, begin=0, end=0.03 * max_epochs,
         convert_to_iter_based=True),
    dict(type="CosineAnnealingLR", eta_min=0.0, by_epoch=True, begin=0.03 * max_epochs,
         end=max_epochs, convert_to_iter_based=True),
]  # fmt: skip
