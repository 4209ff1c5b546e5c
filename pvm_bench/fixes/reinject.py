"""Periodic image re-injection: a deliberately simple training-free baseline (pvm-bench's own).

Every ``every`` generated tokens (decode steps t = every, 2*every, ...; never at prefill) a
forward pre-hook on decoder layer ``layer`` adds

    strength * mean(Z_row) * (rms(h_row) / rms(mean(Z_row)))

to the residual stream ``h`` at the last position, where ``Z_row`` are that row's visual
embeddings as placed into ``inputs_embeds`` at prefill. The rms ratio makes ``strength`` a
fraction of the residual's own scale (visual embeddings live at input scale, a mid-depth
residual is usually much larger), so one default fits every model.

There is no published source for this baseline; it is the naive "remind the model of the image
now and then" control for PVM. Defaults (ours): ``every = 32`` tokens, ``layer = None`` (=
``num_layers // 2``, mid-depth, where PVM's paper layers also sit), ``strength = 0.1``.
``strength = 0`` is bit-identical to ``base`` (the hook returns the input unchanged).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import nn

from pvm_bench.fixes.base import capture_visual, fix_variant, hidden_arg, replace_hidden_arg
from pvm_bench.instrument import instrument_for
from pvm_bench.variants import VariantError

if TYPE_CHECKING:
    from pvm_bench.models.loading import LoadedModel


@dataclass(frozen=True)
class ReinjectConfig:
    """Re-injection hyperparameters (our defaults; see the module docstring)."""

    strength: float = 0.1
    every: int = 32
    layer: int | None = None

    def __post_init__(self) -> None:
        if self.every < 1:
            raise ValueError("every must be >= 1")


@dataclass
class ReinjectStats:
    """How many (row, step) injections happened."""

    injected: int = 0


def _rms(x: torch.Tensor) -> torch.Tensor:
    return x.float().pow(2).mean(-1, keepdim=True).sqrt()


@contextlib.contextmanager
def reinject_active(lm: LoadedModel, config: ReinjectConfig) -> Iterator[ReinjectStats]:
    """Run ``lm`` with periodic re-injection; the hook is removed on exit (also on exceptions)."""
    layer = config.layer if config.layer is not None else lm.num_layers // 2
    if not -lm.num_layers <= layer < lm.num_layers:
        raise VariantError(f"reinject: layer {layer} out of range for {lm.num_layers} decoder layers")
    stats = ReinjectStats()

    with capture_visual(lm) as state:

        def pre(module: nn.Module, args: tuple, kwargs: dict):
            if config.strength == 0 or state.bypass or state.step < 1 or state.step % config.every:
                return None
            if not state.has_memory:
                return None
            h = hidden_arg(args, kwargs)
            mem, mask = state.memory, state.memory_mask
            counts = mask.sum(1, keepdim=True)  # [B, 1]
            mean = (mem.float() * mask[..., None]).sum(1) / counts.clamp(min=1)  # [B, H]
            last = h[:, -1, :]
            scale = _rms(last) / _rms(mean).clamp(min=1e-12)
            add = (config.strength * mean * scale) * (counts > 0)  # rows without images get nothing
            out = h.clone()
            out[:, -1, :] = (last.float() + add).to(h.dtype)
            stats.injected += int((counts > 0).sum())
            return replace_hidden_arg(args, kwargs, out)

        handle = instrument_for(lm).sites.hook(f"layers.{layer % lm.num_layers}", pre, pre=True, with_kwargs=True)
        try:
            yield stats
        finally:
            handle.remove()


def _describe(c: ReinjectConfig) -> str:
    return (
        f"periodic image re-injection: mean visual embedding every {c.every} tokens, strength={c.strength}"
    )


VARIANT = fix_variant("reinject", ReinjectConfig(), _describe, reinject_active)
