# GRPO after text_coords' ShapesRef REC fine-tuning: R1-style grounding RL with
# text coordinates (VLM-R1), the comparison GETok-R1 draws. Reward: the box IoU
# plus 0.5 for an answer that parses whole. Start from the fine-tuned export:
#   unigrounding train configs/text_coords/rec_shapesref.py --work-dir work_dirs/text_coords
#   unigrounding train configs/text_coords/grpo_shapesref.py \
#     --cfg-options model.policy=work_dirs/text_coords/export
_base_ = ["../_base_/datasets/shapesref_rec.py", "../_base_/schedules/grpo_quick.py"]
model = dict(
    policy="work_dirs/text_coords/export",
    rewards=[dict(type="BoxIoUReward"), dict(type="AnswerFormatReward", weight=0.5)],
)
train_dataloader = dict(batch_size=4)
