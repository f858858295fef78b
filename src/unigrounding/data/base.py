"""The base class of the library's datasets."""

from __future__ import annotations

from collections.abc import Iterable
from itertools import islice

from mmengine.dataset import BaseDataset
from mmengine.registry import DefaultScope

from ..registry import SCOPE


class GroundingDataset(BaseDataset):
    """An mmengine dataset whose records come from :meth:`load_samples`.

    Subclasses set their own attributes, then call ``super().__init__``: that
    builds the pipeline and (unless ``lazy_init``) loads the data, in the
    library's registry scope so that pipeline ``type=`` names resolve to its
    transforms whoever builds the dataset.

    Args:
        data_root: the dataset's folder.
        max_samples: keep only the first ``max_samples`` samples (``None`` or
            0: all).
        **kwargs: :class:`~mmengine.dataset.BaseDataset`'s (``pipeline``,
            ``lazy_init``, ...).
    """

    def __init__(self, data_root: str, max_samples: int | None = None, **kwargs) -> None:
        if max_samples is not None and max_samples < 0:
            raise ValueError(f"max_samples must be >= 0 or None, got {max_samples}")
        self.max_samples = max_samples
        with DefaultScope.overwrite_default_scope(SCOPE):
            super().__init__(data_root=data_root, **kwargs)

    def load_data_list(self) -> list[dict]:
        # islice stops pulling at the limit: a generator's later records are never read
        return list(islice(self.load_samples(), self.max_samples or None))

    def load_samples(self) -> Iterable[dict]:
        """Every sample, in order. A generator stops reading once ``max_samples``
        are taken; a list is read whole, then cut."""
        raise NotImplementedError
