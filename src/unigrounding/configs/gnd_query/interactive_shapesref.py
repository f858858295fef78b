# gnd_query on ShapesRef interactive segmentation: the object is given as a
# visual prompt (point, box, scribble or mask, rotating over the referring
# expressions), encoded as UGLMM's <prompt> token, and segmented by the
# grounding decoder. Scored per prompt type (InteractiveSegMetric).
_base_ = ["./rec_shapesref.py"]
train_dataloader = dict(dataset=dict(task="interactive"))
val_dataloader = dict(dataset=dict(task="interactive"))
test_dataloader = val_dataloader
val_evaluator = [dict(type="InteractiveSegMetric")]
test_evaluator = val_evaluator
