# REF-VLM-7B, stage 1: projector alignment, "the same setup as Shikra"
# (App. D stage 1, Tables 14-16). Only the projector learns; CLIP and the
# LLM are frozen and no decoder is used (the paper writes boxes as numbers in
# this stage; here the triplets' decoders are simply not trained). lr 1e-5
# (Table 14). Data (Table 15): VG, Visual7W, LLaVA-Instruct, VQAv2, COCO,
# Flickr30k Entities, RefCOCO/+/g, VCR — the ones this library reads below;
# LLaVA-Instruct is LLaVA-format (LLaVAShikraDataset).
_base_ = ["./ref_vlm_7b_base.py"]
model = dict(frozen=None, trainable=("projector.*",))
train_dataloader = dict(
    dataset=dict(
        type="ConcatDataset",
        datasets=[
            {{_base_.visual_genome_reg}},
            {{_base_.flickr30k_gcg}},
            {{_base_.refcoco}},
            {{_base_.refcoco_plus}},
            {{_base_.refcocog}},
            {{_base_.refcocog_reg}},
        ],
    )
)
optim_wrapper = dict(optimizer=dict(lr=1e-5))
