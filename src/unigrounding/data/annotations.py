"""Reading annotation files: the error a malformed file or record raises, the
problems a dataset's validation finds, and the helpers every loader uses so that
its errors name the file and record."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..structures import GeometryError


@dataclass(frozen=True)
class RecordProblem:
    """One problem of one dataset record, found by validation (see
    :class:`~unigrounding.data.validation.RecordCheck`).

    Attributes:
        source: the annotation file and record the loader names (``source`` of
            the record, else its image path).
        record: the record's ``sample_id`` (``image_id`` where it has none).
        field: where in the record: ``image_path``, ``ori_shape``, ``gt[0].box``...
        kind: the problem's class, counted in summaries (``image missing``...).
        detail: what is wrong, with the values.
    """

    source: str
    record: str
    field: str
    kind: str
    detail: str

    def __str__(self) -> str:
        return f"{self.source} sample {self.record}: {self.field}: {self.detail}"


class AnnotationError(ValueError):
    """A malformed annotation file or record; the message names file and record.

    ``problems`` holds every bad record when the error reports a dataset's
    validation (empty for an error of one file or record)."""

    def __init__(self, message: str, problems: Sequence[RecordProblem] = ()) -> None:
        super().__init__(message)
        self.problems = tuple(problems)


class SampleError(AnnotationError):
    """A record whose sample failed to load as it was drawn (its image missing
    or unreadable, a mask that does not decode, ...): what a dataset's
    validation finds before a run, met during one (``validate="off"``, or a
    file changed since). The message names the dataset, the item and the
    record; :func:`~unigrounding.engine.runner.train` stops on it with a
    checkpoint of the iterations done.

    A DataLoader worker's error reaches the main process as a new exception
    of the same class built from the message alone: the class is the tag."""


def require_file(path: Path, what: str) -> Path:
    """``path``; :class:`FileNotFoundError` naming ``what`` and ``path`` if it is missing."""
    if not path.exists():
        raise FileNotFoundError(f"{what} not found: {path}")
    return path


def read_json(path: Path, what: str = "annotation file") -> Any:
    """The parsed JSON of ``path``; errors name ``what`` (missing file) or ``path``."""
    require_file(path, what)
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise AnnotationError(f"{path}: not valid JSON ({exc})") from exc


def record_name(path: Path, kind: str, index: int, record: Any, key: str) -> str:
    """``"<path> <kind> #<index> (<key>=<value>)"``: ``?`` for the value when
    ``record`` is no dict or lacks ``key`` (the name must not fail on a bad record)."""
    value = record.get(key, "?") if isinstance(record, dict) else "?"
    return f"{path} {kind} #{index} ({key}={value})"


@contextmanager
def annotation_errors(
    where: str | Path,
    problem: str = "malformed record",
    errors: tuple[type[Exception], ...] = (KeyError, TypeError, ValueError),
) -> Iterator[None]:
    """Re-raise ``errors`` from the block as :class:`AnnotationError`
    ``"<where>: <problem> (<error>)"``. A :class:`GeometryError` passes as it
    is: it names its box already."""
    try:
        yield
    except GeometryError:
        raise
    except errors as exc:
        raise AnnotationError(f"{where}: {problem} ({exc!r})") from exc
