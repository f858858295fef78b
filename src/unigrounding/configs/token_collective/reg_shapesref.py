# token_collective on ShapesRef REG: the user's region is its token collective
# ("... this <ref> region <boi><vis_3><vis_9><eoi>"); the answer is the
# referring expression, scored by METEOR / CIDEr (pip install
# 'unigrounding[eval]'; Java). Initialise as for rec_shapesref.py.
_base_ = ["./rec_shapesref.py"]
train_dataloader = dict(dataset=dict(task="reg"))
val_dataloader = dict(dataset=dict(task="reg"))
test_dataloader = val_dataloader
val_evaluator = [dict(type="REGMetric")]
test_evaluator = val_evaluator
