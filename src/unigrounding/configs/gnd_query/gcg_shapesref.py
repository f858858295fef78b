# gnd_query on ShapesRef grounded conversation generation (UGLMM appendix B.4:
# interleaved [GND] tokens): "a red circle [GND][GND][GND], a big square
# [GND][GND][GND]." — every referable object of the image, left to right.
# Scored on (phrase, box) pairs (GCGMetric: recall, precision, mIoU).
_base_ = ["./rec_shapesref.py"]
train_dataloader = dict(dataset=dict(task="gcg"))
val_dataloader = dict(dataset=dict(task="gcg"))
test_dataloader = val_dataloader
val_evaluator = [dict(type="GCGMetric")]
test_evaluator = val_evaluator
