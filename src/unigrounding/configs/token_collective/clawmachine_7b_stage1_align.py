# ClawMachine-7B, stage 1: projector alignment (sec. 3.4 "Initialization",
# Table 14). Only the MLP projector learns, on LLaVA-Pretrain (CC-SBU-558k)
# captions, 1 epoch at lr 1e-3; quantization off: the LLM sees only the
# continuous patch features. The A.3 settings (AdamW, cosine, warm-up 0.03,
# batch 256) are the paper's for "the two stages"; here they are kept for
# this one too (the paper is silent).
_base_ = ["./clawmachine_7b_base.py"]
model = dict(
    init_checkpoint="work_dirs/clawmachine_7b_stage0_quantizer/export",
    codec=dict(perception="continuous"),
    frozen=None,
    trainable=("projector.*",),
)
train_dataloader = dict(dataset={{_base_.llava_pretrain}})
optim_wrapper = dict(optimizer=dict(lr=1e-3))
val_dataloader = None
val_cfg = None
val_evaluator = None
