# gnd_query on ShapesRef category-based detection (UGLMM appendix B.4):
# "Detect every circle." -> "circle-1 [GND][GND][GND], circle-2 [GND][GND][GND]";
# each instance's score is its grounding embedding's similarity to the chosen
# query, so COCO box mAP can rank them (CategoryDetectionMetric).
_base_ = ["./rec_shapesref.py"]
train_dataloader = dict(dataset=dict(task="det"))
val_dataloader = dict(dataset=dict(task="det"))
test_dataloader = val_dataloader
val_evaluator = [dict(type="CategoryDetectionMetric")]
test_evaluator = val_evaluator
