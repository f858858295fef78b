"""An mmengine ``Runner`` whose checkpoints hold per-rank state.

Under a sharding strategy (FSDP, DeepSpeed ZeRO) no rank holds the whole
model and optimizer, so mmengine's single checkpoint file cannot either. A
checkpoint ``iter_N.pth`` is then two things side by side:

* ``iter_N.pth`` — mmengine's file, written by rank 0, with everything
  that is not sharded (iteration, schedulers, message hub, seed, config)
  and the name of the shard folder; plain data, read with the safe loader;
* ``iter_N.pth.shards/`` — the model and optimizer state, written by every
  rank in the strategy's own format.

``--resume`` reads both and continues exactly. A strategy subclasses
:class:`ShardedCheckpointRunner` and says how its shards are written and read.
"""

from __future__ import annotations

import time
from pathlib import Path

import mmengine
import torch
import torch.distributed as dist
from mmengine.runner import Runner

from .hooks import shard_dir
from .safe_load import read_checkpoint

#: the key of a checkpoint file naming its shard folder
SHARDS = "sharded_state"


class ShardedCheckpointRunner(Runner):
    """``Runner`` whose model and optimizer state is saved by every rank."""

    #: set while :meth:`resume` runs: the shards' optimizer state is read too
    _resuming_optimizer = False

    def _save_shards(self, folder: Path, optimizer: bool) -> None:
        """Write this rank's model (and optimizer) state into ``folder``."""
        raise NotImplementedError

    def _load_shards(self, folder: Path, optimizer: bool) -> None:
        """Read this rank's model (and optimizer) state from ``folder``."""
        raise NotImplementedError

    def _init_model_weights(self) -> None:
        """mmengine would initialise and then broadcast every tensor, which
        sharded tensors cannot be: the strategy's wrapper broadcast rank 0's
        weights before sharding, and the model was initialised when built."""

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
        self._save_shards(shard_dir(path), save_optimizer)
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
            SHARDS: shard_dir(path).name,
        }
        if save_param_scheduler and self.param_schedulers is not None:
            checkpoint["param_schedulers"] = [s.state_dict() for s in self.param_schedulers]
        self.call_hook("before_save_checkpoint", checkpoint=checkpoint)
        if dist.get_rank() == 0:
            torch.save(checkpoint, str(path))
        dist.barrier()

    def load_checkpoint(self, filename: str, map_location="cpu", strict=False, revise_keys=None):
        """The model's shards of a sharded checkpoint (and, while resuming,
        the optimizer's); any other file as mmengine loads it."""
        checkpoint = read_checkpoint(filename)
        if SHARDS not in checkpoint:
            kwargs = {} if revise_keys is None else {"revise_keys": revise_keys}
            return super().load_checkpoint(filename, map_location, strict, **kwargs)
        self.call_hook("after_load_checkpoint", checkpoint=checkpoint)
        self._load_shards(Path(filename).parent / checkpoint[SHARDS], self._resuming_optimizer)
        self._has_loaded = True
        self.logger.info(f"Load sharded checkpoint from {filename}")
        return checkpoint

    def resume(self, filename: str, resume_optimizer: bool = True, **kwargs) -> None:
        """mmengine's resume (iteration, schedulers, message hub, seed) with
        the model's and the optimizer's shards."""
        self._resuming_optimizer = resume_optimizer
        try:
            super().resume(filename, resume_optimizer=resume_optimizer, **kwargs)
        finally:
            self._resuming_optimizer = False


def broadcast_weights(module: torch.nn.Module) -> None:
    """Every rank starts from rank 0's weights, as under DDP (before the
    strategy shards them)."""
    with torch.no_grad():
        for tensor in module.state_dict().values():
            dist.broadcast(tensor, src=0)
