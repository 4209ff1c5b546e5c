"""PAI's hyperparameters: the one type both halves of PAI read.

:mod:`pvm_bench.fixes.pai` (the attention boost, the variant) and
:mod:`pvm_bench.fixes.pai_guidance` (the image-free guidance) both import it from here, so the
two modules import one way (pai -> pai_guidance -> pai_config).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class PAIConfig:
    """PAI hyperparameters (defaults and their sources in the :mod:`pvm_bench.fixes.pai` docstring)."""

    alpha: float = 0.2
    start_layer: int = 2
    end_layer: int | None = None
    gamma: float = 1.1
    cutoff: float = 0.1
    prefill: Literal["official", "boost"] = "official"

    @property
    def boost_prefill(self) -> bool:
        """Whether the prefill forward (which produces generated token 0) gets the boost.

        The schedule and its citations: the :mod:`pvm_bench.fixes.pai` docstring, point 3.
        """
        return self.prefill == "boost" or self.gamma == 1

    def __post_init__(self) -> None:
        if not (math.isfinite(self.alpha) and self.alpha >= 0):
            raise ValueError(f"alpha must be a finite number >= 0 (got {self.alpha}); 0 turns the boost off")
        if not (math.isfinite(self.gamma) and self.gamma >= 1):
            raise ValueError(f"gamma must be a finite number >= 1 (got {self.gamma}); 1 turns the guidance off")
        if not (math.isfinite(self.cutoff) and 0 < self.cutoff <= 1):
            raise ValueError(f"cutoff must be in (0, 1] (got {self.cutoff})")
        if self.start_layer < 0:
            raise ValueError(f"start_layer must be >= 0 (got {self.start_layer})")
        if self.end_layer is not None and self.end_layer <= self.start_layer:
            raise ValueError(f"end_layer must be > start_layer (got {self.end_layer} <= {self.start_layer})")
