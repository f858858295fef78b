"""Fully sharded data parallel training (torch FSDP2) inside mmengine.

``unigrounding train CONFIG --strategy fsdp`` (under ``torchrun ...
--launcher pytorch``) shards the model with ``torch.distributed.fsdp.fully_shard``
— each LLM decoder layer is one unit, the rest of the model the root unit —
so parameters, gradients and optimizer state are split across the ranks
(ZeRO-3). It runs on CUDA (NCCL) and on CPU (gloo), which is how the tests run it.

mmengine knows nothing of sharded tensors, so two pieces stand in for its own:

* :class:`FullyShardedModel`, the model wrapper (as ``MMDistributedDataParallel``
  is for DDP): it shards the model and delegates ``train_step`` / ``val_step``
  / ``test_step`` to it, whose ``forward`` FSDP2's hooks unshard;
* :class:`FSDPRunner`, whose checkpoints are written by every rank with
  ``torch.distributed.checkpoint`` (model and optimizer shards in
  ``<checkpoint>.shards/``, :mod:`~.sharded_runner`), so ``--resume``
  continues exactly, on the same or another number of ranks.

The export after training gathers the full state on rank 0
(:meth:`FullyShardedModel.full_state_dict`) and is an ordinary export folder.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.distributed.checkpoint as dcp
from mmengine.registry import MODEL_WRAPPERS, RUNNERS
from torch import nn
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)
from torch.distributed.fsdp import fully_shard

from .sharded_runner import ShardedCheckpointRunner, broadcast_weights


def decoder_layers(llm: nn.Module) -> list[nn.Module]:
    """The LLM's decoder layers: the classes transformers lists in
    ``_no_split_modules`` (the blocks it never splits across devices)."""
    base = llm.get_base_model() if hasattr(llm, "get_base_model") else llm
    names = set(getattr(base, "_no_split_modules", None) or ())
    return [m for m in base.modules() if type(m).__name__ in names]


@MODEL_WRAPPERS.register_module()
class FullyShardedModel(nn.Module):
    """mmengine model wrapper that shards ``module`` with FSDP2.

    Args:
        module: the model (its ``llm`` is sharded layer by layer, then the
            whole model as the root unit).
        reshard_after_forward: free the gathered parameters after each
            unit's forward (ZeRO-3); ``False`` keeps them until backward
            (ZeRO-2-like: more memory, less communication).
    """

    def __init__(self, module: nn.Module, reshard_after_forward: bool = True) -> None:
        super().__init__()
        if getattr(module, "llm", None) is None:
            raise ValueError("FSDP shards a model with an `llm`; this one has none")
        if hasattr(module.llm, "peft_config"):
            raise NotImplementedError("LoRA under FSDP is not supported: use --strategy ddp")
        layers = decoder_layers(module.llm)
        if not layers:
            raise ValueError(
                f"{type(module.llm).__name__} names no decoder layer classes "
                "(`_no_split_modules`): cannot shard it layer by layer"
            )
        broadcast_weights(module)
        for layer in layers:
            fully_shard(layer, reshard_after_forward=reshard_after_forward)
        fully_shard(module, reshard_after_forward=reshard_after_forward)
        module.lockstep_generation = True
        self.module = module

    def train_step(self, data, optim_wrapper):
        return self.module.train_step(data, optim_wrapper)

    def val_step(self, data):
        return self.module.val_step(data)

    def test_step(self, data):
        return self.module.test_step(data)

    def full_state_dict(self) -> dict[str, torch.Tensor]:
        """The whole state of the sharded model, gathered to rank 0's CPU
        (every rank must call it; the others get an empty dict)."""
        options = StateDictOptions(full_state_dict=True, cpu_offload=True)
        return get_model_state_dict(self.module, options=options)


@RUNNERS.register_module()
class FSDPRunner(ShardedCheckpointRunner):
    """mmengine ``Runner`` whose checkpoints hold the FSDP shards, written
    with ``torch.distributed.checkpoint`` (see the module docstring)."""

    def _save_shards(self, folder: Path, optimizer: bool) -> None:
        model = self.model.module
        state = {"model": get_model_state_dict(model)}
        if optimizer:
            state["optim"] = get_optimizer_state_dict(model, self.optim_wrapper.optimizer)
        dcp.save(state, checkpoint_id=str(folder))

    def _load_shards(self, folder: Path, optimizer: bool) -> None:
        model = self.model.module
        state = {"model": get_model_state_dict(model)}
        if optimizer:
            state["optim"] = get_optimizer_state_dict(model, self.optim_wrapper.optimizer)
        dcp.load(state, checkpoint_id=str(folder))
        set_model_state_dict(model, state["model"])
        if optimizer:
            set_optimizer_state_dict(model, self.optim_wrapper.optimizer, state["optim"])
