# gnd_query on ShapesRef gRES (gRefCOCO format): multi-target expressions get
# every instance as "[GND]" runs, no-target ones the answer "There is none.";
# scored with ReLA's gRES protocol (cIoU, gIoU, N-acc, T-acc).
_base_ = ["./rec_shapesref.py"]
train_dataloader = dict(dataset=dict(task="gres"))
val_dataloader = dict(dataset=dict(task="gres"))
test_dataloader = val_dataloader
val_evaluator = [dict(type="GRESMetric")]
test_evaluator = val_evaluator
