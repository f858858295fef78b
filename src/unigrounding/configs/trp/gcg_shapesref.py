# trp on ShapesRef GCG-box (REF-VLM's grounded conversation generation with
# boxes): every referable object of the image as its own triplet,
# "<Phrase>red circle</Phrase>(<Unit>box</Unit>[0]<REF>)", after the VD-CoT
# block. Scored on (phrase, box) pairs (GCGMetric: recall, precision, mIoU).
_base_ = ["./rec_shapesref.py"]
train_dataloader = dict(dataset=dict(task="gcg"))
val_dataloader = dict(dataset=dict(task="gcg"))
test_dataloader = val_dataloader
val_evaluator = [dict(type="GCGMetric")]
test_evaluator = val_evaluator
