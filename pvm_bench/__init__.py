"""pvm-bench: does a VLM keep looking at the image deep into a long answer?"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

# MKL picks summation orders by buffer alignment unless told otherwise; greedy decoding of
# near-tied logits then differs from run to run. Strict CNR costs little and makes runs
# reproducible (must be set before torch loads MKL).
os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")

__version__ = "0.1.0"

if TYPE_CHECKING:
    from pvm_bench.models.loading import LoadedModel


def load_model(source: str, pvm: str | os.PathLike[str] | None = None, **kwargs: Any) -> LoadedModel:
    """Load a VLM (hub id or local dir), optionally with a PVM adapter or checkpoint attached.

    The composition happens here, at the top: :func:`pvm_bench.models.loading.load_model` loads
    the transformers model (its keyword arguments), :func:`pvm_bench.pvm.attach_from_path`
    attaches ``pvm`` (an adapter directory or a full reference-format checkpoint).
    """
    from pathlib import Path

    from pvm_bench.models.loading import load_model as _load

    lm = _load(source, **kwargs)
    if pvm is not None:
        from pvm_bench.pvm import attach_from_path

        attach_from_path(lm, Path(pvm))
    return lm


__all__ = ["__version__", "load_model"]
