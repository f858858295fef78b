"""Propose-then-refine training conversations (GETok Algorithm 1) from any
mask dataset.

Each item of the wrapped dataset (a packed sample with a mask referent, e.g.
ShapesRef or RefCOCO with ``task="res"``) becomes one refinement conversation,
serialized as Algorithm 1 does — the question and sampled grid tokens in the
user turn, their offsets in the assistant turn::

    USER: <image> Where is the red circle?
          Refine: <grid_9_9><grid_14_15>          ASSISTANT: <off_1_1><off_0_0>

For a box the grids are its two jittered corners (REC question; offsets kept
only if they reach IoU ``tau``); for a mask, ``K`` cells drawn from the
Inside / Ring / Hard-Delete / Far pools (RES question). Which one is drawn per
item: a box with probability ``box_fraction`` (the paper mixes both; it does
not give the ratio — 0.5 here). Items whose referent has no mask (no-target
gRES samples) pass through unchanged. Sampling is seeded by ``(seed, index)``,
so an item is the same in every epoch and on every worker.
"""

from __future__ import annotations

import numpy as np
from torch.utils.data import Dataset

from ...data.tasks import TASK_TEMPLATES
from ...registry import DATASETS
from .codec import REFINE_TEMPLATE
from .lattice import GridLattice
from .offsets import TAU, box_corner_refinement, sample_refinement


@DATASETS.register_module()
class GridOffsetRefineDataset(Dataset):
    """Args:
    dataset: the wrapped mask dataset (config or instance).
    n, m: grid and offset sizes (must match the codec's).
    box_fraction: share of items that refine box corners instead of mask points.
    tau: box-corner IoU threshold of Algorithm 1.
    seed: sampling seed.
    """

    def __init__(
        self,
        dataset: dict | Dataset,
        n: int = 32,
        m: int = 64,
        box_fraction: float = 0.5,
        tau: float = TAU,
        seed: int = 0,
    ) -> None:
        self.dataset = DATASETS.build(dataset) if isinstance(dataset, dict) else dataset
        self.lattice = GridLattice(n, m)
        self.box_fraction, self.tau, self.seed = box_fraction, tau, seed

    def __len__(self) -> int:
        return len(self.dataset)

    # mmengine's ConcatDataset asks wrapped datasets for these
    @property
    def metainfo(self) -> dict:
        return self.dataset.metainfo

    def full_init(self) -> None:
        self.dataset.full_init()

    def get_data_info(self, index: int) -> dict:
        return self.dataset.get_data_info(index)

    def __getitem__(self, index: int) -> dict:
        item = self.dataset[index]
        sample = item["data_samples"]
        refs = sample.gt_refs.group(0)
        if len(refs) == 0 or "masks" not in refs:
            return item
        rng = np.random.default_rng([self.seed, index])
        frame, hw = sample.frame, sample.frame.input_hw
        if rng.random() < self.box_fraction:
            box = frame.boxes_to_input(refs.boxes[0].numpy())[0]
            cells, targets = box_corner_refinement(box, hw, self.lattice, rng, self.tau)
            task = "rec"
        else:
            mask = frame.mask_to_input(refs.masks[0]).numpy()
            example = sample_refinement(mask, self.lattice, rng)
            cells, targets = example.cells, example.targets
            task = "res"
        question = TASK_TEMPLATES[task][0].replace("{expression}", sample.expression)
        sample = sample.clone()
        sample.set_metainfo({"task": task})
        sample.conversation = [
            {
                "role": "user",
                "text": REFINE_TEMPLATE.format(
                    question=question, proposal=self.lattice.grid_tokens(cells)
                ),
            },
            {"role": "assistant", "text": "".join(targets)},
        ]
        return {"inputs": item["inputs"], "data_samples": sample}
