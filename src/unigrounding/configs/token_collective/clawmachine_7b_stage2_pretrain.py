# ClawMachine-7B, stage 2: alignment pre-training (sec. 2.3, A.2 Table 12,
# A.3). The projector and the whole LLM (with the visual codes' embedding
# rows) learn; EVA-CLIP and the VQ layer stay frozen. 1 epoch, lr 2e-5,
# AdamW, cosine, warm-up 0.03, batch 256, 2048 tokens.
# Data (Table 12): LLaVA-Pretrain 558k, RefCOCO+/g region captions (287k),
# Visual Genome region captions (247k); ShareGPT-4V (100k captions) is
# LLaVA-format too: add it as another LLaVAShikraDataset.
_base_ = ["./clawmachine_7b_base.py"]
model = dict(init_checkpoint="work_dirs/clawmachine_7b_stage1_align/export")
train_dataloader = dict(
    dataset=dict(
        type="ConcatDataset",
        datasets=[
            {{_base_.llava_pretrain}},
            {{_base_.refcoco_plus_reg}},
            {{_base_.refcocog_reg}},
            {{_base_.visual_genome_reg}},
        ],
    )
)
optim_wrapper = dict(optimizer=dict(lr=2e-5))
