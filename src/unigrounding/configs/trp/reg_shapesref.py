# trp on ShapesRef REG: the region arrives as a visual prompt (point, box,
# scribble or mask, rotating over the expressions) — [VPT] tokens filled by the
# parameter-free mask-guided aggregation — and the answer is the referring
# expression, scored by METEOR / CIDEr (pip install 'unigrounding[eval]'; Java).
_base_ = ["./rec_shapesref.py"]
train_dataloader = dict(dataset=dict(task="reg"))
val_dataloader = dict(dataset=dict(task="reg"))
test_dataloader = val_dataloader
val_evaluator = [dict(type="REGMetric")]
test_evaluator = val_evaluator
