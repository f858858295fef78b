# trp on ShapesRef RES: "<Unit>mask</Unit>" triplets, the <REF> hidden state
# decoded by the MaskFormer-style mask decoder (sigmoid focal + Dice).
_base_ = ["./rec_shapesref.py"]
train_dataloader = dict(dataset=dict(task="res"))
val_dataloader = dict(dataset=dict(task="res"))
test_dataloader = val_dataloader
val_evaluator = [dict(type="RESMetric")]
test_evaluator = val_evaluator
