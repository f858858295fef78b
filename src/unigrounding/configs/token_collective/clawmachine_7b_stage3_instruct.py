# ClawMachine-7B, stage 3: instruction tuning (sec. 2.3, A.2 Table 12, A.3).
# As stage 2, at lr 1e-5, on referring and grounding data in both directions:
# RefCOCO+/g REC and region captions (287k), Visual Genome (247k). The paper's
# LLaVA-mix665k subset (COCO-VQA and GQA, 436k) is LLaVA-format (add a
# LLaVAShikraDataset); Osprey, AS-V2 and Chatterbox have no reader here yet.
_base_ = ["./clawmachine_7b_base.py"]
model = dict(init_checkpoint="work_dirs/clawmachine_7b_stage2_pretrain/export")
train_dataloader = dict(
    dataset=dict(
        type="ConcatDataset",
        datasets=[
            {{_base_.refcoco_plus_rec}},
            {{_base_.refcocog_rec}},
            {{_base_.refcoco_plus_reg}},
            {{_base_.refcocog_reg}},
            {{_base_.visual_genome_reg}},
        ],
    )
)
optim_wrapper = dict(optimizer=dict(lr=1e-5))
