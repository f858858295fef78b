# ShapesRef RES (masks), generated into data_root on first use (RefCOCO on-disk format).
_base_ = ["./shapesref_rec.py"]
train_dataloader = dict(dataset=dict(task="res"))
val_dataloader = dict(dataset=dict(task="res"))
test_dataloader = val_dataloader
val_evaluator = [dict(type="RESMetric")]
test_evaluator = val_evaluator
