# REF-VLM-7B, stage 2: unified multi-task training (App. D stage 2, Tables
# 14-16). The VPT encoder (parameter-free mask-guided aggregation here,
# sec. 4.2), projector, LLM and the box and mask decoders learn (from
# scratch); CLIP frozen. lr 2e-6 (Table 14). Data (Table 15, a VT-Instruct
# subset): the RefCOCO family for REC / RES / interactive grounding, VG and
# RefCOCOg region captions, Flickr30k grounded captions below; GranD, GRIT,
# COCO-Interactive, Osprey, Visual7W, LLaVA-Grounding, PNG and OpenPSG have no
# reader here yet.
_base_ = ["./ref_vlm_7b_base.py"]
model = dict(init_checkpoint="work_dirs/ref_vlm_7b_stage1_align/export")
train_dataloader = dict(
    dataset=dict(
        type="ConcatDataset",
        datasets=[
            {{_base_.refcoco}},
            {{_base_.refcoco_plus}},
            {{_base_.refcocog}},
            {{_base_.refcoco_res}},
            {{_base_.refcocog_res}},
            {{_base_.refcoco_interactive}},
            {{_base_.refcocog_reg}},
            {{_base_.visual_genome_reg}},
            {{_base_.flickr30k_gcg}},
        ],
    )
)
optim_wrapper = dict(optimizer=dict(lr=2e-6))
