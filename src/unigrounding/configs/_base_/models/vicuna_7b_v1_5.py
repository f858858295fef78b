# Vicuna-7B v1.5 (fine-tuned from Llama-2-7B, whose architecture it keeps:
# 6.74 B parameters): an HF folder (config.json, weights, tokenizer).
_base_ = ["./llama2_7b.py"]
llm = dict(pretrained="checkpoints/vicuna-7b-v1.5")
