# GETok-R1's offset stage on ShapesRef REC: GRPO on the refinement pass
# (follow_up=True). The policy proposes grid tokens greedily, then samples 8
# refinements of that one proposal (offset tokens or <delete>, one per grid
# token); each is scored by how much it raises the box IoU over the proposal
# (the paper's box refinement reward, BoxRefinementReward) plus 0.5 for a
# refinement read without repair. The paper stops this stage at 200 steps, as
# the quick GRPO schedule does. It starts from the fine-tuned export, or, in
# the paper's order, from the grid stage's (whose config has the offset pass
# off, hence the override):
#   unigrounding train configs/grid_offset/rec_shapesref.py --work-dir work_dirs/grid_offset
#   unigrounding train configs/grid_offset/grpo_offset_shapesref.py \
#     --cfg-options model.policy=work_dirs/grid_offset/export
# (after grpo_grid_shapesref.py: model.policy=<its work dir>/export)
_base_ = ["../_base_/datasets/shapesref_rec.py", "../_base_/schedules/grpo_quick.py"]
model = dict(
    policy="work_dirs/grid_offset/export",
    overrides={"codec.refine": True},
    follow_up=True,
    rewards=[dict(type="BoxRefinementReward"), dict(type="AnswerFormatReward", weight=0.5)],
)
train_dataloader = dict(batch_size=4)
