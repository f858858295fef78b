# gnd_query on ShapesRef REC with the LLM fine-tuned through LoRA (UGLMM's
# option; peft, rank 8, alpha 16 on the attention projections) instead of
# fully. The new tokens' embedding rows and the output layer stay trainable.
# Meant for a pretrained LLM (llm=dict(pretrained=<local dir>)): the tiny
# preset's LLM starts from random weights, which LoRA would keep frozen.
_base_ = ["./rec_shapesref.py"]
model = dict(lora=dict(r=8, alpha=16))
