# gnd_query on ShapesRef RES: the same [GND] answers; mask targets add eq. (1)'s
# mask BCE and Dice terms to the box terms.
_base_ = ["./rec_shapesref.py"]
train_dataloader = dict(dataset=dict(task="res"))
val_dataloader = dict(dataset=dict(task="res"))
test_dataloader = val_dataloader
val_evaluator = [dict(type="RESMetric")]
test_evaluator = val_evaluator
