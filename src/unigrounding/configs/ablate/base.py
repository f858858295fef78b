# Shared setting of `unigrounding ablate`: tiny model, ShapesRef REC, quick schedule.
# `ablate` overrides the codec, the data size and the iteration budget per preset,
# and starts every codec from the same cached codec-neutral pretraining.
_base_ = [
    "../_base_/models/tiny_mllm.py",
    "../_base_/datasets/shapesref_rec.py",
    "../_base_/schedules/quick.py",
]
# The tower arrives pretrained (configs/pretrain/shapesref_cells.py) and keeps
# training with the LLM: freezing it was measured and lost accuracy
# (REC Acc@0.5 0.350 frozen vs 0.407 trainable, same 1100 iterations).
model = dict(frozen=())
# Batch 32 (the preset's 625 iterations see as many conversations as 500 at
# batch 40): with two codecs training at once, one thread each, a batch-40
# step of the tiny model costs 1.4-1.7x a batch-32 one on this 2-core machine
# (benchmarks/bench_model.py, two runs side by side: text_coords 539-682 vs
# 366-397 ms), more than the 1.25x of its size.
train_dataloader = dict(batch_size=32)
# What one fine-tuning iteration costs next to one of text_coords (train
# seconds of the quick ablation at 7ff3d6f, two codecs side by side; stage
# configs give theirs per stage iteration). `ablate` orders its jobs by it so
# that its lanes finish together (unigrounding/scheduling.py); a rough value
# only costs time, never changes a result. Nothing else reads it.
ablate_cost = 1.0
