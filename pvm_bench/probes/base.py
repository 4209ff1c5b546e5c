"""The probe API: measurements taken while a model generates.

A probe is installed once on a :class:`~pvm_bench.models.loading.LoadedModel`, told about
each batch before generation starts (:meth:`Probe.begin_batch`), and asked for its per-row
records afterwards (:meth:`Probe.end_batch`). Records are flat dicts that always carry
``step`` (0 = the query at the last prompt position, t >= 1 = the query at generated token
t) and usually ``layer``; the runner adds variant/task/sample ids and writes them to
``attention.parquet``. A probe may also contribute a transformers ``LogitsProcessor`` that
sees every step's scores (for entropy or logit-lens measures).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any

from pvm_bench.errors import UserError
from pvm_bench.models.observer import BatchContext

if TYPE_CHECKING:
    from transformers import LogitsProcessor

    from pvm_bench.models.loading import LoadedModel

__all__ = ["BatchContext", "Probe", "ProbeError"]


class ProbeError(UserError, RuntimeError):
    """A probe cannot run on this model; the message says why."""


class Probe(ABC):
    """Base class for probes. Subclasses set ``name`` and implement the hooks they need."""

    name: str = ""

    def install(self, model: LoadedModel) -> None:
        """Attach hooks to ``model`` (called once before the first batch)."""

    def uninstall(self) -> None:
        """Remove everything :meth:`install` attached."""

    @abstractmethod
    def begin_batch(self, ctx: BatchContext) -> None:
        """Reset per-batch state before ``generate`` runs."""

    @abstractmethod
    def end_batch(self, n_generated: list[int]) -> list[list[dict[str, Any]]]:
        """Per row, the records for steps ``0 .. n_generated[row] - 1``."""

    def logits_processor(self) -> LogitsProcessor | None:
        """An optional processor that observes (and must not change) each step's scores."""
        return None


class AttentionSiteProbe(Probe):
    """A probe that reads the model's attention site. ``install`` sets ``_lm``, ``_detach`` (the
    site subscription's remover) and ``_release`` (the instrument's); ``uninstall`` undoes both."""

    _lm: Any = None
    _detach: Any = None
    _release: Any = None
    _active: bool = False

    def uninstall(self) -> None:
        """Leave the attention site (the original backend returns with the last subscriber)."""
        if self._lm is None:
            return
        if self._detach is not None:
            self._detach()
        if self._release is not None:
            self._release()
        self._detach = self._release = None
        self._lm = None
        self._active = False
