"""The base class of the library's datasets."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from itertools import islice
from typing import ClassVar

from mmengine.dataset import BaseDataset
from mmengine.logging import print_log
from mmengine.registry import DefaultScope

from ..registry import SCOPE
from .annotations import AnnotationError, SampleError
from .validation import VALIDATE_MODES, RecordCheck


class GroundingDataset(BaseDataset):
    """An mmengine dataset whose records come from :meth:`load_samples`.

    Subclasses set their own attributes, then call ``super().__init__``: that
    builds the pipeline and (unless ``lazy_init``) loads the data, in the
    library's registry scope so that pipeline ``type=`` names resolve to its
    transforms whoever builds the dataset.

    Loading checks every record against its image
    (:class:`~unigrounding.data.validation.RecordCheck`), so that bad data
    stops a run before its first iteration, not when the sample is drawn.
    With ``lazy_init`` it runs when the records are loaded (mmengine's
    ``full_init``: at the first ``len`` or item, which a Runner asks for as it
    builds the dataloader).

    Args:
        data_root: the dataset's folder.
        max_samples: keep only the first ``max_samples`` samples (``None`` or
            0: all). Only they are checked; with ``validate="clip"`` they are
            the first that pass, so a dropped record does not shrink the set.
        validate: ``"error"`` (default): one :class:`AnnotationError` listing
            every bad record; ``"clip"``: boxes outside the image are clipped
            to it and records with any other problem dropped, the counts per
            problem logged; ``"off"``: no check.
        **kwargs: :class:`~mmengine.dataset.BaseDataset`'s (``pipeline``,
            ``lazy_init``, ...).
    """

    #: record fields holding geometry entries (``box``, optional ``segmentation``)
    geometry_fields: ClassVar[tuple[str, ...]] = ("gt", "prompts")

    def __init__(
        self,
        data_root: str,
        max_samples: int | None = None,
        validate: str = "error",
        **kwargs,
    ) -> None:
        if max_samples is not None and max_samples < 0:
            raise ValueError(f"max_samples must be >= 0 or None, got {max_samples}")
        if validate not in VALIDATE_MODES:
            raise ValueError(f"validate must be one of {VALIDATE_MODES}, got {validate!r}")
        self.max_samples, self.validate = max_samples, validate
        with DefaultScope.overwrite_default_scope(SCOPE):
            super().__init__(data_root=data_root, **kwargs)

    def load_data_list(self) -> list[dict]:
        records = self.load_samples()
        check = None
        if self.validate != "off":
            # checked as they are drawn, so that islice counts the kept ones
            check = RecordCheck(self.geometry_fields, clip=self.validate == "clip")
            records = check.records(records)
        # islice stops pulling at the limit: a generator's later records are never read
        data = list(islice(records, self.max_samples or None))
        if check is not None and (check.problems or check.clipped):
            self._report(check)
        return data

    def _report(self, check: RecordCheck) -> None:
        """Raise (``validate="error"``) or log (``"clip"``) what ``check`` found."""
        name = f"{type(self).__name__} ({self.data_root})"
        if self.validate == "error":
            lines = "\n".join(f"  {p}" for p in check.problems)
            raise AnnotationError(
                f"{name}: {check.bad_records()} of {check.checked} records fail validation "
                f"({check.summary()}); mend them, or pass validate='clip' to clip boxes to "
                f"the image and drop the others:\n{lines}",
                check.problems,
            )
        print_log(
            f"{name}: validate='clip' dropped {check.bad_records()} of {check.checked} "
            f"records ({check.summary()})",
            logger="current",
            level=logging.WARNING,
        )

    def prepare_data(self, idx: int) -> dict:
        """mmengine's (the record through the pipeline), its errors (the
        pipeline's: :func:`~.pipeline.load_rgb`'s, :class:`GeometryError`, a
        shape mismatch) raised as :class:`SampleError` naming this item."""
        try:
            return super().prepare_data(idx)
        except SampleError:  # a wrapped GroundingDataset's: named already
            raise
        except (OSError, ValueError) as exc:  # any other (a bug) is no record's fault
            raise SampleError(
                f"{type(self).__name__} ({self.data_root}) item {idx}: {exc}"
            ) from exc

    def load_samples(self) -> Iterable[dict]:
        """Every sample, in order. A generator stops reading once ``max_samples``
        are taken; a list is read whole, then cut."""
        raise NotImplementedError
