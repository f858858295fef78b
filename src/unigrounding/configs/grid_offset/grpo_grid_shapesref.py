# GETok-R1's grid-token stage on ShapesRef REC: GRPO on the grid answer alone
# (the offset pass off in the rollouts, model.codec.refine=False), after the
# codec's fine-tuning. The paper names box, mask and format rewards for this
# stage without defining them; for REC boxes this uses the box IoU plus 0.5
# for an answer that parses whole, as the text_coords RL config, so the two
# action spaces meet the same reward. Start from the fine-tuned export:
#   unigrounding train configs/grid_offset/rec_shapesref.py --work-dir work_dirs/grid_offset
#   unigrounding train configs/grid_offset/grpo_grid_shapesref.py \
#     --cfg-options model.policy=work_dirs/grid_offset/export
_base_ = ["../_base_/datasets/shapesref_rec.py", "../_base_/schedules/grpo_quick.py"]
model = dict(
    policy="work_dirs/grid_offset/export",
    overrides={"codec.refine": False},
    rewards=[dict(type="BoxIoUReward"), dict(type="AnswerFormatReward", weight=0.5)],
)
train_dataloader = dict(batch_size=4)
