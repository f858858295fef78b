"""DeepSpeed ZeRO training inside mmengine (``--strategy deepspeed``).

``unigrounding train CONFIG --strategy deepspeed`` (under ``torchrun ...
--launcher pytorch``, or ``deepspeed``'s own launcher) trains the model with
DeepSpeed's engine: ZeRO stage 2 by default (optimizer state and gradients
partitioned over the ranks), 3 to partition the parameters too. DeepSpeed is
used directly rather than through mmengine's ``FlexibleRunner``, so a config
keeps the ordinary ``Runner`` schema, hooks and schedulers of every other
strategy. It runs on CUDA (NCCL) and on CPU (gloo), which is how the tests run it.

The run's settings become DeepSpeed's config (:func:`deepspeed_config`):

=================================  =========================================
config                             DeepSpeed
=================================  =========================================
``train_dataloader.batch_size``    ``train_micro_batch_size_per_gpu``
``optim_wrapper.accumulative_counts``  ``gradient_accumulation_steps``
``optim_wrapper.clip_grad.max_norm``   ``gradient_clipping`` (L2 norm only)
``model.precision`` bf16           ``bf16.enabled`` (bf16 weights, fp32
                                   master copies in the ZeRO optimizer)
``model.precision`` fp16           ``fp16.enabled`` with dynamic loss scaling
                                   (a static ``AmpOptimWrapper`` ``loss_scale``
                                   is kept)
``deepspeed.zero_stage``           ``zero_optimization.stage`` (0-3; default 2)
``deepspeed.config``               any other DeepSpeed key, merged last
=================================  =========================================

The optimizer, its parameter groups (per-module learning rates) and the
learning-rate schedule are mmengine's, built from the config as for DDP; the
engine steps them. Checkpoints are written by every rank with DeepSpeed's
``save_checkpoint`` into ``<checkpoint>.shards/`` (:mod:`~.sharded_runner`)
and read back with torch's safe loader (weights only, a few plain DeepSpeed
records allow-listed), so ``--resume`` continues exactly. The export after training
gathers the full state on rank 0 and is an ordinary export folder.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import torch
from mmengine.config import Config
from mmengine.optim import OptimWrapper
from mmengine.registry import MODEL_WRAPPERS, RUNNERS
from torch import nn

from .safe_load import read_checkpoint
from .sharded_runner import ShardedCheckpointRunner, broadcast_weights

#: ZeRO stages DeepSpeed offers (0: plain data parallelism through the engine)
ZERO_STAGES = (0, 1, 2, 3)

#: DeepSpeed keys derived from the run's config, and where from: a raw
#: ``deepspeed.config`` may repeat them only with the same value
DERIVED_FROM = {
    "train_micro_batch_size_per_gpu": "train_dataloader.batch_size",
    "gradient_accumulation_steps": "optim_wrapper.accumulative_counts",
}

#: a checkpoint tag: DeepSpeed's files of one checkpoint sit in ``<shards>/<tag>/``
TAG = "state"


def deepspeed_config(cfg: Config) -> dict[str, Any]:
    """DeepSpeed's config for ``cfg`` (see the module docstring's table).

    Raises:
        ValueError: a ZeRO stage DeepSpeed lacks, a gradient clip by another
            norm than L2, or a raw ``deepspeed.config`` key that contradicts
            the value derived from the rest of the config (naming both).
    """
    options = dict(cfg.get("deepspeed") or {})
    stage = options.pop("zero_stage", 2)
    raw = copy.deepcopy(dict(options.pop("config", None) or {}))
    if options:
        raise ValueError(
            f"deepspeed: unknown option(s) {sorted(options)}; DeepSpeed's own keys go "
            "under deepspeed.config"
        )
    if stage not in ZERO_STAGES:
        raise ValueError(f"deepspeed.zero_stage must be one of {ZERO_STAGES}, got {stage!r}")
    optim = cfg.get("optim_wrapper") or {}
    ds: dict[str, Any] = {
        "train_micro_batch_size_per_gpu": int(cfg.train_dataloader.batch_size),
        "gradient_accumulation_steps": int(optim.get("accumulative_counts", 1)),
        "zero_optimization": {"stage": stage},
        # mmengine's logger reports the loss and learning rate
        "steps_per_print": 2**62,
    }
    clip = optim.get("clip_grad")
    if clip:
        if float(clip.get("norm_type", 2)) != 2.0 or "max_norm" not in clip:
            raise ValueError(
                f"optim_wrapper.clip_grad={dict(clip)}: DeepSpeed clips by the global L2 "
                "norm only (clip_grad=dict(max_norm=...))"
            )
        ds["gradient_clipping"] = float(clip["max_norm"])
    from ..models.mllm import resolve_precision

    device = "cuda" if torch.cuda.is_available() else "cpu"
    precision = resolve_precision(cfg.model.get("precision", "auto"), device)
    if precision == "bf16":
        ds["bf16"] = {"enabled": True}
    elif precision == "fp16":
        loss_scale = optim.get("loss_scale", "dynamic")
        ds["fp16"] = {"enabled": True, "loss_scale": 0 if loss_scale == "dynamic" else loss_scale}
    for key, value in raw.items():
        if key in DERIVED_FROM and ds[key] != value:
            raise ValueError(
                f"deepspeed.config.{key}={value!r} contradicts the config's "
                f"{ds[key]!r} (from {DERIVED_FROM[key]}): set it there instead"
            )
        if isinstance(value, dict) and isinstance(ds.get(key), dict):
            ds[key] = {**ds[key], **value}
        else:
            ds[key] = value
    return ds


@MODEL_WRAPPERS.register_module()
class DeepSpeedModel(nn.Module):
    """mmengine model wrapper around a DeepSpeed engine.

    DeepSpeed builds its engine from the model *and* the optimizer, which
    mmengine builds after the wrapper: :class:`DeepSpeedRunner` calls
    :meth:`initialize` once it has the optimizer.

    Args:
        module: the model.
        config: DeepSpeed's config (:func:`deepspeed_config`).
    """

    def __init__(self, module: nn.Module, config: dict) -> None:
        super().__init__()
        import deepspeed

        if not torch.distributed.is_initialized():
            raise RuntimeError(
                "--strategy deepspeed needs a distributed launch (--launcher pytorch)"
            )
        deepspeed.init_distributed()  # adopts the process group already started
        broadcast_weights(module)
        self.module = module
        self.config = config
        self.engine = None
        if self.zero_stage == 3:
            module.lockstep_generation = True

    @property
    def zero_stage(self) -> int:
        return int(self.config.get("zero_optimization", {}).get("stage", 0))

    def initialize(self, optimizer: torch.optim.Optimizer):
        """Build the engine around ``module`` and ``optimizer``; returns the
        engine's optimizer (ZeRO's, which partitions the given one)."""
        import deepspeed

        self.engine, engine_optimizer, _, _ = deepspeed.initialize(
            model=self.module, optimizer=optimizer, config=self.config
        )
        self.engine.checkpoint_engine = _safe_checkpoint_engine(self.engine)
        return engine_optimizer

    def train_step(self, data, optim_wrapper) -> dict[str, torch.Tensor]:
        """The model's forward through the engine (which gathers ZeRO-3's
        parameters), then ``optim_wrapper`` (an :class:`EngineOptimWrapper`)
        steps the engine."""
        data = self.module.data_preprocessor(data, training=True)
        losses = self.engine(**data, mode="loss")
        loss, log_vars = self.module.parse_losses(losses)
        optim_wrapper.update_params(loss)
        return log_vars

    def val_step(self, data):
        return self.module.val_step(data)

    def test_step(self, data):
        return self.module.test_step(data)

    def full_state_dict(self) -> dict[str, torch.Tensor]:
        """The whole state on rank 0's CPU (every rank must call it; the
        others get an empty dict). ZeRO-3's partitioned parameters are
        gathered first."""
        import deepspeed

        rank = torch.distributed.get_rank()
        params = list(self.module.parameters()) if self.zero_stage == 3 else []
        with deepspeed.zero.GatheredParameters(params, enabled=bool(params)):
            if rank != 0:
                return {}
            return {k: v.detach().cpu().clone() for k, v in self.module.state_dict().items()}


def _safe_checkpoint_engine(engine):
    """DeepSpeed's torch checkpoint engine, reading with ``weights_only=True``
    (DeepSpeed's own reads with ``weights_only=False``, which would let a
    crafted checkpoint run code). Its files hold tensors, containers and a
    few plain DeepSpeed records (the ZeRO stage enum, the loss scaler's
    settings, the fragment-address tuple), which are allow-listed: none
    defines its own unpickling, so reading one only sets attributes."""
    from deepspeed.runtime.checkpoint_engine.torch_checkpoint_engine import TorchCheckpointEngine
    from deepspeed.runtime.fp16.loss_scaler import DynamicLossScaler, LossScaler
    from deepspeed.runtime.zero.config import ZeroStageEnum
    from deepspeed.utils.tensor_fragment import fragment_address

    records = [ZeroStageEnum, LossScaler, DynamicLossScaler, fragment_address]

    class SafeTorchCheckpointEngine(TorchCheckpointEngine):
        def load(self, path: str, map_location=None):
            with torch.serialization.safe_globals(records):
                return read_checkpoint(path, map_location)

    return SafeTorchCheckpointEngine(engine._config)


class EngineOptimWrapper(OptimWrapper):
    """mmengine's ``OptimWrapper`` whose backward and step are the DeepSpeed
    engine's, which accumulates, clips, scales fp16 losses and zeroes the
    gradients itself. (mmengine's ``DeepSpeedOptimWrapper`` does the same but
    is no ``OptimWrapper``, so the ``Runner`` builds no schedulers on it.)"""

    def __init__(self, optimizer: torch.optim.Optimizer, engine) -> None:
        super().__init__(optimizer)
        self.engine = engine

    def update_params(self, loss: torch.Tensor, step_kwargs=None, zero_kwargs=None) -> None:
        self.backward(loss)
        self.step()

    def backward(self, loss: torch.Tensor, **kwargs) -> None:
        self.engine.backward(loss, **kwargs)
        self._inner_count += 1

    def step(self, **kwargs) -> None:
        self.engine.step(**kwargs)

    def zero_grad(self, **kwargs) -> None:
        """The engine zeroes the gradients after its step."""


@RUNNERS.register_module()
class DeepSpeedRunner(ShardedCheckpointRunner):
    """mmengine ``Runner`` that trains through a DeepSpeed engine (see the
    module docstring)."""

    def build_optim_wrapper(self, optim_wrapper):
        """mmengine's optimizer (parameter groups, learning rates) handed to
        the engine, in an :class:`EngineOptimWrapper`."""
        if not isinstance(optim_wrapper, dict):
            return optim_wrapper  # already built
        cfg = copy.deepcopy(dict(optim_wrapper))
        for key in ("type", "accumulative_counts", "clip_grad", "loss_scale", "dtype"):
            cfg.pop(key, None)  # each is DeepSpeed's now (deepspeed_config)
        built = super().build_optim_wrapper(dict(cfg, type="OptimWrapper"))
        return EngineOptimWrapper(self.model.initialize(built.optimizer), self.model.engine)

    def _save_shards(self, folder: Path, optimizer: bool) -> None:
        engine = self.model.engine
        engine.save_checkpoint(str(folder), tag=TAG, save_latest=False)

    def _load_shards(self, folder: Path, optimizer: bool) -> None:
        engine = self.model.engine
        engine.load_checkpoint(
            str(folder),
            tag=TAG,
            load_optimizer_states=optimizer,
            load_lr_scheduler_states=False,  # mmengine's schedulers are in its own file
        )
