"""What generation tells the things that watch it (probes), without knowing what they are.

``models/`` imports neither probes nor PVM: :func:`pvm_bench.models.generation.generate` talks to
any object with the :class:`BatchObserver` methods (:class:`pvm_bench.probes.base.Probe` is one).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import torch

if TYPE_CHECKING:
    from transformers import LogitsProcessor


@dataclass
class BatchContext:
    """What an observer knows about the batch about to be generated (prompts are left padded)."""

    input_ids: torch.Tensor  # [B, P]
    attention_mask: torch.Tensor  # [B, P], 0 on left padding
    image_mask: torch.Tensor  # [B, P] bool, True at image placeholder positions
    max_new_tokens: int
    #: The processor's outputs for the batch (``pixel_values``, ``image_grid_thw``, ...), for observers
    #: that need the image layout (the spatial-map probe); empty when not known.
    inputs: Mapping[str, Any] = field(default_factory=dict)
    #: The requests' ``key`` s, one per row (who each row is; None when not known).
    keys: list[Any] | None = None

    @property
    def batch_size(self) -> int:
        return int(self.input_ids.shape[0])

    @property
    def prompt_len(self) -> int:
        return int(self.input_ids.shape[1])


class BatchObserver(Protocol):
    """Told about each batch before generation and asked for per-row records after it."""

    name: str

    def begin_batch(self, ctx: BatchContext) -> None: ...

    def end_batch(self, n_generated: list[int]) -> list[list[dict[str, Any]]]: ...

    def logits_processor(self) -> LogitsProcessor | None: ...
