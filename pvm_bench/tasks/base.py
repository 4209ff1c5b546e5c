"""The Task API and the task registry.

A task is data + prompt + scorer and nothing model-specific:

* :meth:`Task.load` returns :class:`Sample` objects (images decoded lazily),
* :meth:`Task.messages` builds the chat messages (``{"type": "image"}`` parts mark where the
  sample's images go; a part may carry ``"index"`` into ``sample.images``, default: in order),
* :meth:`Task.score` turns a model output into a :class:`Score`,
* :meth:`Task.aggregate` reduces scores to metrics.

Tasks live in small Python modules that define ``TASKS`` (a list of Task instances) and
optionally ``GROUPS`` (name -> list of task names); :mod:`pvm_bench.tasks.registry` finds them
(the repository's ``tasks/`` folder, ``--include-path`` folders, the ``pvm_bench.tasks`` entry points).
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from pvm_bench.data import tables as data
from pvm_bench.data.imageroot import ImagePathError, ImageRoot, current_root, resolve_image_path
from pvm_bench.data.images import (  # noqa: F401 (MAX_IMAGE_PIXELS, max_image_pixels re-exported)
    MAX_IMAGE_PIXELS,
    CorruptImageError,
    load_image,
    max_image_pixels,
    source_bytes,
)
from pvm_bench.errors import TaskError
from pvm_bench.tasks.metrics import Metric, RecordInfo, stratified_mean, unit_values

__all__ = [
    "CorruptImageError", "HubTask", "LazyImage", "Metric", "RecordInfo", "Sample", "Score", "Task", "TaskError",
    "is_missing", "stratified_mean", "unit_values",
]


@dataclass
class LazyImage:
    """An image decoded only when the model needs it (:func:`pvm_bench.data.images.load_image`).

    ``source`` is raw bytes, a filesystem path, a PIL image, or a ``{"bytes", "path"}`` dict
    as stored by ``datasets``' Image feature.
    """

    source: Any = field(repr=False)
    name: str = "image"
    #: Where a path-only source may point (:mod:`pvm_bench.data.imageroot`), captured when the image is
    #: made: paths from a ``--data-dir`` table resolve against its folder and stay inside it.
    root: ImageRoot | None = field(default_factory=current_root, repr=False, compare=False)

    def path(self, src: str | Path) -> Path:
        """The file a path source names; :class:`CorruptImageError` when it leaves the data root."""
        try:
            return resolve_image_path(src, self.root, self.name)
        except ImagePathError as exc:
            raise CorruptImageError(str(exc)) from None

    def load(self) -> Image.Image:
        """The decoded 8-bit RGB image; :class:`CorruptImageError` when it cannot be decoded, is larger
        than :data:`MAX_IMAGE_PIXELS`, its mode's values cannot be mapped to 8 bits, or its path leaves the
        data root."""
        return load_image(self._resolved(), self.name)

    def fingerprint_bytes(self) -> bytes:
        try:
            return source_bytes(self._resolved())
        except CorruptImageError as exc:  # refused: never read; the sample fails alone when it runs
            return repr(exc).encode()

    def _resolved(self) -> Any:
        """The source with a path (bare or inside a ``{"bytes", "path"}`` struct without bytes) resolved by
        :meth:`path`: against the data file's folder, refused outside the data root."""
        src = self.source
        if isinstance(src, dict) and not src.get("bytes") and src.get("path"):
            src = src["path"]
        return self.path(src) if isinstance(src, (str, Path)) and src != "" else src


@dataclass
class Sample:
    """One benchmark item. ``target`` is whatever the task's scorer compares against."""

    id: str
    question: str
    target: Any
    images: list[LazyImage] = field(default_factory=list)
    choices: list[str] | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class Score:
    """The result of scoring one output.

    ``value`` is in [0, 1] (checked against the metric's ``value_range`` when a run records it).
    ``truncated`` marks outputs that ended (max_new_tokens) before an answer could be found: they
    score 0. (A run's record says ``truncated`` from the generator: every output that reached
    ``max_new_tokens`` without an end of sequence, answer found or not.) ``details`` carries JSON values:
    ``details["extractor"]`` names the answer-extraction path (exactly ``"none"`` when nothing
    could be extracted); boolean entries are flags, reported as rates. ``sub_scores`` are named
    numeric scores next to ``value`` that a :class:`Metric` can aggregate (``Metric.subscore``).
    """

    value: float
    parsed: str | None = None
    truncated: bool = False
    details: dict[str, Any] = field(default_factory=dict)
    sub_scores: dict[str, float] = field(default_factory=dict)


class Task(ABC):
    """Base class for tasks. Subclasses set the class attributes and implement load/score."""

    name: str = ""
    version: str = "1"
    description: str = ""
    splits: tuple[str, ...] = ("test",)
    default_split: str = "test"
    #: Name of the headline metric (one of :meth:`metrics`).
    metric: str = "accuracy"
    #: A sentence shown in summary.md when this task's numbers are not comparable with published
    #: ones (e.g. a rule-based scorer where papers use a GPT judge). None: nothing to say.
    comparability_note: str | None = None
    #: Sample-metadata field measuring how far into the answer the image is needed (e.g. the
    #: number of counted items); the report plots accuracy by it. None: the task has none.
    distance_key: str | None = None
    #: Axis label for :attr:`distance_key` (default: the key).
    distance_label: str = ""
    #: Hub dataset id the data comes from by default (None: generated locally).
    hub_id: str | None = None
    #: Generation defaults for this task (e.g. ``{"max_new_tokens": 64}``).
    generation: dict[str, Any] = {}
    #: How an output cut inside an unclosed ``<think>`` is scored: "zero" or "parse" (lmms-eval);
    #: set per run from ``--protocol`` (:func:`pvm_bench.scoring.extract.apply_unfinished_policy`).
    unfinished_policy: str = "zero"

    @abstractmethod
    def load(self, split: str | None = None, limit: int | None = None, data_dir: Path | None = None) -> list[Sample]:
        """Return up to ``limit`` samples of ``split`` (``None``: default split)."""

    def messages(self, sample: Sample) -> list[dict[str, Any]]:
        """Chat messages for ``sample``: images first, then the question."""
        content: list[dict[str, Any]] = [{"type": "image"} for _ in sample.images]
        content.append({"type": "text", "text": sample.question})
        return [{"role": "user", "content": content}]

    @abstractmethod
    def score(self, sample: Sample, output: str, *, truncated: bool = False) -> Score:
        """Score one model output for ``sample``."""

    def metrics(self) -> list[Metric]:
        """The metrics this task reports, headline (:attr:`metric`) included; default: the mean
        score per sample, named :attr:`metric`."""
        return [Metric(self.metric, description="mean score per sample")]

    def headline_metric(self) -> Metric:
        """The declared metric named :attr:`metric` (else the first declared)."""
        declared = self.metrics()
        return next((m for m in declared if m.name == self.metric), declared[0])

    def aggregate(self, scores: Sequence[Score]) -> dict[str, float]:
        """Reduce scores (one per sample, one repeat) to the declared :meth:`metrics`, plus
        ``truncated_rate`` and ``n``. Units are read from each score's details (the report uses
        the sample metadata as well, see :data:`RecordInfo`)."""
        n = len(scores)
        infos = [{"sample_id": i, **s.details} for i, s in enumerate(scores)]
        out: dict[str, float] = {}
        for m in self.metrics():
            vals = [s.sub_scores.get(m.subscore, float("nan")) if m.subscore else s.value for s in scores]
            out[m.name] = stratified_mean(unit_values(m, infos, vals))
        out["truncated_rate"] = sum(s.truncated for s in scores) / n if n else float("nan")
        out["n"] = float(n)
        return out

    def fingerprint(self, samples: Sequence[Sample]) -> str:
        """A hash of the loaded data (ids, questions, targets, image bytes)."""
        h = hashlib.sha256(f"{self.name}:{self.version}".encode())
        for s in samples:
            h.update(f"{s.id}\x00{s.question}\x00{s.target!r}\x00{s.choices!r}".encode())
            for img in s.images:
                h.update(hashlib.sha256(img.fingerprint_bytes()).digest())
        return h.hexdigest()[:16]


def is_missing(value: Any) -> bool:
    """None, NaN (pandas' empty cell) or an empty string."""
    if value is None:
        return True
    if isinstance(value, float) and value != value:
        return True
    return isinstance(value, str) and not value.strip()


class HubTask(Task):
    """A task over rows of a hub dataset (or the same table under ``--data-dir``).

    Subclasses set the data attributes and implement :meth:`sample_from_row`; loading, split
    validation and the missing-field check (one :class:`TaskError` naming the record) are done
    here.
    """

    #: Folder name under ``--data-dir`` (default: the task name).
    data_name: str = ""
    #: Dataset configs to concatenate (MMMU has one per subject).
    hub_configs: tuple[str | None, ...] = (None,)
    #: Fields every row must have; a row without one is malformed.
    required_fields: tuple[str, ...] = ()
    #: Field holding the record id, used in error messages.
    id_field: str | None = None

    def load(self, split: str | None = None, limit: int | None = None, data_dir: Path | None = None) -> list[Sample]:
        split = split or self.default_split
        if split not in self.splits:
            raise TaskError(f"task '{self.name}': unknown split '{split}'; choose from {', '.join(self.splits)}")
        rows = data.load_rows(self.data_name or self.name, split, hub_id=self.hub_id, data_dir=data_dir,
                              hub_configs=self.hub_configs, limit=limit)
        return [self._sample(row, i) for i, row in enumerate(rows)]

    def row_id(self, row: dict[str, Any], position: int) -> str:
        value = row.get(self.id_field) if self.id_field else None
        return f"row {position}" if is_missing(value) else str(value)

    def _sample(self, row: dict[str, Any], position: int) -> Sample:
        missing = [k for k in self.required_fields if is_missing(row.get(k))]
        if missing:
            raise TaskError(
                f"task '{self.name}': record {self.row_id(row, position)} lacks {', '.join(missing)} "
                f"({self.hub_id} schema expected)"
            )
        return self.sample_from_row(row, position)

    @abstractmethod
    def sample_from_row(self, row: dict[str, Any], position: int) -> Sample:
        """Build the Sample for one row that has all :attr:`required_fields`."""
