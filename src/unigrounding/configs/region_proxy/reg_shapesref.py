# region_proxy on ShapesRef REG: the user's box is one more region with its own
# proxy ("What is <r7><region>?"); the answer is the referring expression,
# scored by METEOR / CIDEr (pip install 'unigrounding[eval]'; Java).
# Initialise from the detection stage as for rec_shapesref.py.
_base_ = ["./rec_shapesref.py"]
train_dataloader = dict(dataset=dict(task="reg"))
val_dataloader = dict(dataset=dict(task="reg"))
test_dataloader = val_dataloader
val_evaluator = [dict(type="REGMetric")]
test_evaluator = val_evaluator
