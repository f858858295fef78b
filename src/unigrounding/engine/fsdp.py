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
* :class:`ShardedRunner`, whose checkpoints are written by every rank with
  ``torch.distributed.checkpoint`` (model and optimizer shards in
  ``<checkpoint>.shards/``) beside mmengine's own file for the rest (iteration,
  schedulers, message hub, seed), so ``--resume`` continues exactly, on the
  same or another number of ranks.

The export after training gathers the full state on rank 0
(:func:`full_state_dict`) and is an ordinary export folder.
"""

from __future__ import annotations

import time
from pathlib import Path

import mmengine
import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
from mmengine.registry import MODEL_WRAPPERS, RUNNERS
from mmengine.runner import Runner
from torch import nn
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)
from torch.distributed.fsdp import fully_shard

#: the key of a checkpoint file naming its shard folder
SHARDS = "sharded_state"


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
        with torch.no_grad():  # every rank starts from rank 0's weights, as DDP does
            for tensor in module.state_dict().values():
                dist.broadcast(tensor, src=0)
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


def full_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The whole state of a sharded model, gathered to rank 0's CPU (every
    rank must call it; the others get an empty dict)."""
    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    return get_model_state_dict(model, options=options)


def _shard_dir(checkpoint: str | Path) -> Path:
    return Path(f"{checkpoint}.shards")


@RUNNERS.register_module()
class ShardedRunner(Runner):
    """mmengine ``Runner`` whose checkpoints hold sharded model and optimizer
    state (see the module docstring)."""

    def _init_model_weights(self) -> None:
        """mmengine would initialise and then broadcast every tensor, which
        sharded tensors cannot be: the wrapper broadcast rank 0's weights
        before sharding, and the model was initialised when it was built."""

    def save_checkpoint(
        self,
        out_dir: str,
        filename: str,
        file_client_args: dict | None = None,
        save_optimizer: bool = True,
        save_param_scheduler: bool = True,
        meta: dict | None = None,
        by_epoch: bool = True,
        backend_args: dict | None = None,
    ) -> None:
        """Every rank writes its shards; rank 0 writes mmengine's file."""
        path = Path(out_dir) / filename
        model = self.model.module
        state = {"model": get_model_state_dict(model)}
        if save_optimizer:
            state["optim"] = get_optimizer_state_dict(model, self.optim_wrapper.optimizer)
        dcp.save(state, checkpoint_id=str(_shard_dir(path)))
        meta = dict(meta or {})
        if by_epoch:
            meta.setdefault("epoch", self.epoch + 1)
            meta.setdefault("iter", self.iter)
        else:
            meta.setdefault("epoch", self.epoch)
            meta.setdefault("iter", self.iter + 1)
        meta.update(
            cfg=self.cfg.pretty_text,
            seed=self.seed,
            experiment_name=self.experiment_name,
            time=time.strftime("%Y%m%d_%H%M%S", time.localtime()),
            mmengine_version=mmengine.__version__,
        )
        checkpoint = {
            "meta": meta,
            "message_hub": self.message_hub.state_dict(),
            SHARDS: _shard_dir(path).name,
        }
        if save_param_scheduler and self.param_schedulers is not None:
            checkpoint["param_schedulers"] = [s.state_dict() for s in self.param_schedulers]
        self.call_hook("before_save_checkpoint", checkpoint=checkpoint)
        if dist.get_rank() == 0:
            torch.save(checkpoint, str(path))
        dist.barrier()

    def load_checkpoint(self, filename: str, map_location="cpu", strict=False, revise_keys=None):
        """The model's shards of a sharded checkpoint (any other file as mmengine loads it)."""
        checkpoint = _read_checkpoint(filename)
        if SHARDS not in checkpoint:
            kwargs = {} if revise_keys is None else {"revise_keys": revise_keys}
            return super().load_checkpoint(filename, map_location, strict, **kwargs)
        self.call_hook("after_load_checkpoint", checkpoint=checkpoint)
        model = self.model.module
        state = {"model": get_model_state_dict(model)}
        dcp.load(state, checkpoint_id=str(Path(filename).parent / checkpoint[SHARDS]))
        set_model_state_dict(model, state["model"])
        self._has_loaded = True
        self.logger.info(f"Load sharded checkpoint from {filename}")
        return checkpoint

    def resume(self, filename: str, resume_optimizer: bool = True, **kwargs) -> None:
        """mmengine's resume (iteration, schedulers, message hub, seed), then
        the optimizer's shards."""
        super().resume(filename, resume_optimizer=resume_optimizer, **kwargs)
        checkpoint = _read_checkpoint(filename)
        if SHARDS in checkpoint and resume_optimizer:
            model, optimizer = self.model.module, self.optim_wrapper.optimizer
            state = {"optim": get_optimizer_state_dict(model, optimizer)}
            dcp.load(state, checkpoint_id=str(Path(filename).parent / checkpoint[SHARDS]))
            set_optimizer_state_dict(model, optimizer, state["optim"])


def _read_checkpoint(filename: str) -> dict:
    """mmengine's part of a checkpoint: plain data, read with the safe loader."""
    try:
        return torch.load(str(filename), map_location="cpu", weights_only=True)
    except Exception as err:
        raise ValueError(f"checkpoint {filename} cannot be read: {err}") from err
