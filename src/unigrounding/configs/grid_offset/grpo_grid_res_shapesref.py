# GETok-R1's grid-token stage on ShapesRef RES: GRPO on the grid answer alone
# (the offset pass off in the rollouts), after the codec's RES fine-tuning.
# The paper names box, mask, semantic-critical-points and format rewards for
# this stage (Table 11) and defines only the points reward (eq. 12); this
# uses, at equal weight, the box IoU, the mask IoU of the decoded mask
# (MaskIoUReward), eq. 12 (SemanticPointsReward), and 0.5 for an answer read
# without repair. Start from the RES fine-tuned export:
#   unigrounding train configs/grid_offset/res_shapesref.py --work-dir work_dirs/grid_offset_res
#   unigrounding train configs/grid_offset/grpo_grid_res_shapesref.py \
#     --cfg-options model.policy=work_dirs/grid_offset_res/export
_base_ = ["../_base_/datasets/shapesref_res.py", "../_base_/schedules/grpo_quick.py"]
model = dict(
    policy="work_dirs/grid_offset_res/export",
    overrides={"codec.refine": False},
    rewards=[
        dict(type="BoxIoUReward"),
        dict(type="MaskIoUReward"),
        dict(type="SemanticPointsReward"),
        dict(type="AnswerFormatReward", weight=0.5),
    ],
)
train_dataloader = dict(batch_size=4)
