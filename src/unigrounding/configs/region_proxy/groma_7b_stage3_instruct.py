# Groma-7B, stage 3: instruction finetuning (sec. 3.3, 5.1, Table 1, Table 7
# "unfrozen"). The LLM is unfrozen with the projector; tower and proposer
# stay frozen (the paper says only that the LLM is unfrozen). 1 epoch.
# Data (Table 1): Flickr30k Entities, VG and RefCOCOg region captions,
# RefCOCO/+/g REC; Groma Instruct, LLaVA Instruct and ShareGPT-4V are
# LLaVA-format (LLaVAShikraDataset). lr 2e-5 at batch 128 (LLaVA-1.5's), our choice.
_base_ = ["./groma_7b_base.py"]
model = dict(
    init_checkpoint="work_dirs/groma_7b_stage2_align/export",
    frozen=("vision.*", "proposers.*"),
)
train_dataloader = dict(dataset=dict(type="ConcatDataset", datasets={{_base_.grounding_mix}}))
optim_wrapper = dict(optimizer=dict(lr=2e-5))  # 16 x 8 GPUs = 128
