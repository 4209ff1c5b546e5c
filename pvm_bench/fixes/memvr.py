"""MemVR-style visual retracing ("Look Twice Before You Answer", Zou et al. 2024, arXiv 2410.03577).

MemVR treats the visual tokens as key-value memory of an FFN and "looks twice" when the model
is uncertain. Here, per forward (prefill and every decode step) and per batch row:

1. Trigger: at each candidate layer ``l`` in ``[start, end)`` a pre-hook applies the logit lens
   (final norm + ``lm_head``) to the layer's input at the last position and computes the
   next-token entropy normalised by ``log(vocab)`` (in [0, 1], so one threshold fits any
   vocabulary). The first candidate layer where it exceeds ``threshold`` is the retracing
   layer of that row for this forward (MemVR's dynamic "premature layer" choice); at most one
   injection per row and forward.
2. Retrace: at that layer the FFN output at the last position becomes

       ffn_out' = (1 - alpha) * ffn_out + alpha * softmax(x Z^T / sqrt(H)) Z

   with ``x`` the FFN's input (post-norm hidden) and ``Z`` the visual embeddings placed into
   ``inputs_embeds`` at image positions (captured at prefill, padded per row and masked).
   This is MemVR's ``FFN(x) ⊕ Z = alpha * Δ(Z | x) + (1 - alpha) * FFN(x)`` with
   ``Δ(Z | x) = Σ_i softmax_i(x · z_i) z_i``; the 1/sqrt(H) temperature is ours (keeps the
   softmax from being one-hot at large H).

Defaults, from the reference code's LLaVA-1.5-7B (32 layers) settings as recalled (not
re-checked offline): retracing ratio ``alpha = 0.12``, entropy ``threshold = 0.75``, candidate
layers 5..16 of 32, expressed here as depth fractions ``start_frac = 5/32``, ``end_frac = 16/32``
so they scale to other depths; pass absolute ``start_layer``/``end_layer`` to override.
Only the last position is retraced (the row whose next token is uncertain); earlier prompt
positions and image positions are untouched.

``alpha = 0`` is bit-identical to ``base`` (no hook changes any tensor); ``threshold = 0``
retraces at every forward (used by tests to force a trigger).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from pvm_bench.fixes import VisualState, capture_visual, hidden_arg, register_fix

if TYPE_CHECKING:
    from pvm_bench.models.loading import LoadedModel


@dataclass(frozen=True)
class MemVRConfig:
    """MemVR hyperparameters (defaults and sources in the module docstring)."""

    alpha: float = 0.12
    threshold: float = 0.75
    start_frac: float = 5 / 32
    end_frac: float = 16 / 32
    start_layer: int | None = None
    end_layer: int | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.alpha <= 1:
            raise ValueError("alpha must be in [0, 1]")

    def layers(self, num_layers: int) -> range:
        """Candidate layers ``[start, end)``; at least one layer."""
        start = self.start_layer if self.start_layer is not None else int(self.start_frac * num_layers)
        end = self.end_layer if self.end_layer is not None else int(self.end_frac * num_layers)
        start = max(0, min(start, num_layers - 1))
        return range(start, max(start + 1, min(end, num_layers)))


@dataclass
class MemVRStats:
    """Counts for diagnostics: row-forwards seen and retraced, per layer."""

    forwards: int = 0
    retraced: int = 0
    by_layer: dict[int, int] = field(default_factory=dict)


def normalised_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Entropy of ``softmax(logits)`` over the last dim divided by ``log(vocab)``: ``[...]`` in [0, 1]."""
    logp = torch.log_softmax(logits.float(), dim=-1)
    ent = -(logp.exp() * logp).nan_to_num(0.0).sum(-1)
    return ent / math.log(logits.shape[-1])


def retrace(x: torch.Tensor, memory: torch.Tensor, memory_mask: torch.Tensor) -> torch.Tensor:
    """``softmax(x Z^T / sqrt(H)) Z`` per row: ``x [B, H]``, ``memory [B, N, H]``, mask ``[B, N]`` -> ``[B, H]``.

    Rows without visual tokens get zeros.
    """
    scores = torch.einsum("bh,bnh->bn", x.float(), memory.float()) / math.sqrt(x.shape[-1])
    scores = scores.masked_fill(~memory_mask, float("-inf"))
    probs = torch.softmax(scores, dim=-1).nan_to_num(0.0)
    return torch.einsum("bn,bnh->bh", probs, memory.float()).to(x.dtype)


@contextlib.contextmanager
def memvr_active(lm: LoadedModel, config: MemVRConfig) -> Iterator[MemVRStats]:
    """Run ``lm`` with MemVR retracing; all hooks are removed on exit (also on exceptions)."""
    from pvm_bench.variants import VariantError

    norm = getattr(lm.language_model, "norm", None)
    head = lm.hf_model.get_output_embeddings()
    if not isinstance(norm, nn.Module) or not isinstance(head, nn.Module):
        raise VariantError(f"MemVR needs the language model's final `norm` and lm_head ({lm.spec.name})")
    stats = MemVRStats()
    if config.alpha == 0:  # zero strength: nothing is installed, the model is exactly base
        yield stats
        return
    layers = lm.layers
    candidates = config.layers(lm.num_layers)
    for i in candidates:
        if not isinstance(getattr(layers[i], "mlp", None), nn.Module):
            raise VariantError(f"MemVR: decoder layer {i} has no `mlp` module")
    pending: dict[int, torch.Tensor] = {}  # layer -> [B] bool rows to retrace in this forward
    done: dict[str, torch.Tensor | None] = {"rows": None}  # rows already retraced in this forward

    def make_trigger(idx: int, state: VisualState):
        def pre(module: nn.Module, args: tuple, kwargs: dict) -> None:
            pending.pop(idx, None)
            if state.bypass or not state.has_memory:
                return
            h = hidden_arg(args, kwargs)[:, -1, :]
            if idx == candidates.start:
                done["rows"] = torch.zeros(h.shape[0], dtype=torch.bool, device=h.device)
                stats.forwards += h.shape[0]
            rows = done["rows"]
            if rows is None or rows.all():
                return
            with torch.no_grad():
                ent = normalised_entropy(head(norm(h)))
            fire = (ent > config.threshold) & ~rows
            if idx == candidates.stop - 1:
                done["rows"] = None
            else:
                done["rows"] = rows | fire
            if fire.any():
                pending[idx] = fire
                n = int(fire.sum())
                stats.retraced += n
                stats.by_layer[idx] = stats.by_layer.get(idx, 0) + n

        return pre

    def make_retrace(idx: int, state: VisualState):
        def post(module: nn.Module, args: tuple, kwargs: dict, output: Any) -> Any:
            fire = pending.pop(idx, None)
            if fire is None or state.memory is None:
                return None
            x = hidden_arg(args, kwargs)[:, -1, :]
            delta = retrace(x, state.memory, state.memory_mask)
            out = output.clone()
            last = out[:, -1, :]
            mixed = (1 - config.alpha) * last + config.alpha * delta
            out[:, -1, :] = torch.where(fire[:, None], mixed, last)
            return out

        return post

    with capture_visual(lm) as state:
        handles = []
        try:
            for i in candidates:
                handles.append(layers[i].register_forward_pre_hook(make_trigger(i, state), with_kwargs=True))
                handles.append(layers[i].mlp.register_forward_hook(make_retrace(i, state), with_kwargs=True))
            yield stats
        finally:
            for h in handles:
                h.remove()
            pending.clear()


def _describe(c: MemVRConfig) -> str:
    return (
        f"MemVR-style visual retracing (Zou et al. 2024): alpha={c.alpha}, entropy threshold={c.threshold}"
    )


register_fix("memvr", MemVRConfig(), _describe, memvr_active)
