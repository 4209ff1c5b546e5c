"""MemVR: memory-space visual retracing ("Look Twice Before You Answer", Zou et al., ICML 2025, arXiv 2410.03577).

Reference: github.com/1zhou-Wang/MemVR at commit de2e3cfc9a09eb73c9efcc6fffe27b1f2e5922cb,
``memvr.py`` (the patched LLaMA decoder loop and MLP used for LLaVA-1.5), cited below as
``MemVR/<file>:<line>``. Per forward (the prefill and every decode step):

1. Trigger (``MemVR/memvr.py:204-215,240``). After each decoder layer ``L`` the logit lens
   (final norm + ``lm_head``) is applied to the layer's output at the last position; the
   uncertainty is the entropy of the softmax over the TOP-10 logits divided by ``log 10``
   (in [0, 1]). The first layer with ``start < L < end`` (both strict) whose entropy exceeds
   ``threshold`` triggers; at most one retracing per forward (``visual_retracing_event``).
2. Retrace (``MemVR/memvr.py:245-249`` and the MLP, ``:86-90``). The FFN of layer ``L + 1``
   (only that one: it is reset after, ``:226-233``) returns, at EVERY position of the forward,

       a   = (x (c1 Z)^T) (c2 Z)                 x: the FFN input, Z: visual tokens [N, H]
       c1  = mean|W_up| / mean|Z|,  c2 = mean|W_down| / mean|Z|      (:248-249)
       out = (1 - r) * FFN(x) + r * (mean|FFN(x)| / mean|a|) * a      (:88-90)

   ``Z`` are the projected image features that the model places into ``inputs_embeds``
   (``MemVR/memvr.py:458``); here the visual embeddings captured at prefill. Note that c1 and
   c2 are scalars and cancel exactly in the output rescaling; they are kept as in the reference.

Recipes per family. The reference has a second implementation for Qwen-VL
(``MemVR/modeling/modeling_qwen.py``: SiLU inside the retrace, the logit lens without the final
norm, the first image's features, ``start 9, end 16, ratio 0.28``). Which recipe a family
follows, the recipes' settings with their sources and how the layer window scales with depth
are data in :mod:`pvm_bench.fixes.memvr_recipes` (Qwen2/2.5/3-VL -> ``qwen``, the LLaVA-style
families -> ``llava``); ``memvr:recipe=llava|qwen`` overrides it, ``ratio=``, ``start=``,
``end=`` override the recipe's values. ``Z`` is ONE image's features, as in the reference: the
last image for ``llava`` (``MemVR/memvr.py:392,458``), the first for ``qwen``
(``modeling_qwen.py:353``); images are told apart with :func:`pvm_bench.probes.images.image_index`.
The window is clipped so that ``L + 1`` is a layer; a model too shallow for any trigger layer
(2 layers) is refused with a message naming ``start``/``end``. run.json records the recipe,
window and source each MemVR variant used (``variant_compositions``).

Batched generation (the reference runs batch size 1, and its entropy sums over the batch):
here trigger, layer and retracing are decided per row; the ``mean|.|`` statistics are taken
per row over that row's non-padding positions (so results do not depend on batch
composition); rows without image tokens (or whose visual embeddings are all zero, where the
reference divides by zero) are never retraced. Soft-capped final logits
(Gemma) are soft-capped in the lens as well.

Zero strength (a bare ``memvr`` is base + MemVR, :mod:`pvm_bench.variants`): ``ratio = 0`` or ``threshold >= 1`` (the
normalised entropy never exceeds 1)
installs nothing and is bit-identical to ``base``; ``threshold = 0`` retraces at every forward.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import torch
from torch import nn

from pvm_bench.fixes.base import VisualState, capture_visual, fix_variant, hidden_arg
from pvm_bench.fixes.memvr_recipes import MemVRRecipe, recipe_for
from pvm_bench.instrument import SiteError, instrument_for
from pvm_bench.instrument.sites import LogitLens, layer_output
from pvm_bench.models.hooks import cached_length
from pvm_bench.probes.images import closing_marker_id, image_index
from pvm_bench.variants import VariantError

if TYPE_CHECKING:
    from pvm_bench.models.loading import LoadedModel

TOP_K = 10
"""Entropy over the top-10 logits (``MemVR/memvr.py:213``)."""


@dataclass(frozen=True)
class MemVRConfig:
    """MemVR hyperparameters (defaults and sources in the module docstring)."""

    ratio: float | None = None
    threshold: float = 0.75
    start: int | None = None
    end: int | None = None
    recipe: Literal["auto", "llava", "qwen"] = "auto"

    def __post_init__(self) -> None:
        if self.ratio is not None and not (math.isfinite(self.ratio) and 0 <= self.ratio <= 1):
            raise ValueError(f"ratio must be in [0, 1] (got {self.ratio}); 0 turns MemVR off")
        if not (math.isfinite(self.threshold) and self.threshold >= 0):
            raise ValueError(f"threshold must be a finite number >= 0 (got {self.threshold}); >= 1 never triggers")
        if self.start is not None and self.start < -1:
            raise ValueError(f"start must be >= -1 (got {self.start}); layers strictly above it may trigger")
        if self.start is not None and self.end is not None and self.end <= self.start + 1:
            raise ValueError(f"end must be > start + 1 (got start={self.start}, end={self.end}): no layer in between")

    @property
    def off(self) -> bool:
        """True when nothing can change: the variant installs no hook."""
        return self.ratio == 0 or self.threshold >= 1

    def resolve(self, model_type: str, num_layers: int) -> ResolvedMemVR:
        """The recipe for ``model_type`` with this config's overrides, its window scaled to ``num_layers``."""
        recipe = recipe_for(model_type, self.recipe)
        start, end = recipe.window(num_layers)
        return ResolvedMemVR(
            recipe, self.ratio if self.ratio is not None else recipe.ratio, self.threshold,
            self.start if self.start is not None else start, self.end if self.end is not None else end,
        )


@dataclass(frozen=True)
class ResolvedMemVR:
    """A MemVR config on one model: recipe, ratio, threshold and absolute window."""

    recipe: MemVRRecipe
    ratio: float
    threshold: float
    start: int
    end: int

    def trigger_layers(self, num_layers: int) -> range:
        """Layers ``L`` whose output is measured: ``start < L < end`` and ``L + 1`` exists (may be empty)."""
        return range(max(self.start + 1, 0), min(self.end, num_layers - 1))

    def describe(self) -> dict[str, Any]:
        r = self.recipe
        return {
            "recipe": r.name,
            "ratio": self.ratio,
            "threshold": self.threshold,
            "start": self.start,
            "end": self.end,
            "silu": r.silu,
            "lens_final_norm": r.lens_final_norm,
            "visual_token": f"{r.image} image",
            "source": r.source,
        }


@dataclass
class MemVRStats:
    """Diagnostics: row-forwards seen and retraced, retracings per FFN layer (``L + 1``)."""

    forwards: int = 0
    retraced: int = 0
    by_layer: dict[int, int] = field(default_factory=dict)


def topk_entropy(logits: torch.Tensor, k: int = TOP_K) -> torch.Tensor:
    """Entropy of ``softmax(top-k logits)`` over the last dim divided by ``log k``: ``[...]`` in [0, 1].

    ``MemVR/memvr.py:213-215``: ``topk(logits, 10)``, ``softmax``, ``sum(-p log p) / log(10)``.
    """
    k = min(k, logits.shape[-1])
    top = torch.topk(logits.float(), k, dim=-1).values
    logp = torch.log_softmax(top, dim=-1)
    ent = -(logp.exp() * logp).nan_to_num(0.0).sum(-1)
    return ent / math.log(k) if k > 1 else torch.zeros_like(ent)


def _mean_abs(x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Per row ``mean |x|`` over positions with weight 1 and the hidden dim: ``x [B, L, H]``, ``weights [B, L]`` ->
    ``[B]``."""
    total = (x.abs().sum(-1) * weights).sum(-1)
    return total / (weights.sum(-1) * x.shape[-1]).clamp(min=1)


def retrace(
    x: torch.Tensor, ffn_out: torch.Tensor, memory: torch.Tensor, memory_mask: torch.Tensor,
    w_up: torch.Tensor, w_down: torch.Tensor, ratio: float, positions: torch.Tensor | None = None,
    silu: bool = False,
) -> torch.Tensor:
    """MemVR's FFN output for every row (``MemVR/memvr.py:86-90,248-249``), computed in float32.

    ``silu``: the Qwen recipe's ``a = SiLU(x (c1 Z)^T) (c2 Z)`` (``modeling_qwen.py:353``).

    Args:
        x: ``[B, L, H]`` the FFN input; ``ffn_out``: ``[B, L, H]`` its output.
        memory: ``[B, N, H]`` visual tokens (rows padded with zeros), ``memory_mask`` ``[B, N]``.
        w_up, w_down: the FFN's up and down projection weights (only ``mean |w|`` is used).
        positions: ``[B, L]`` 1 at non-padding positions (the ``mean|.|`` statistics use only
            those); None = all.

    Returns:
        ``(1 - ratio) * ffn_out + ratio * (mean|ffn_out| / mean|a|) * a``, ``a = (x (c1 Z)^T)(c2 Z)``.
    """
    z = memory.float() * memory_mask[..., None]
    n_z = (memory_mask.sum(-1) * z.shape[-1]).clamp(min=1)
    mean_z = z.abs().sum((-1, -2)) / n_z  # [B]
    c1 = w_up.float().abs().mean() / mean_z
    c2 = w_down.float().abs().mean() / mean_z
    scores = torch.einsum("blh,bnh->bln", x.float(), z * c1[:, None, None])
    if silu:
        scores = torch.nn.functional.silu(scores)
    a = torch.einsum("bln,bnh->blh", scores, z * c2[:, None, None])
    f = ffn_out.float()
    weights = torch.ones(f.shape[:2], device=f.device) if positions is None else positions.to(f.device).float()
    mean_a = _mean_abs(a, weights)
    scale = torch.where(mean_a > 0, _mean_abs(f, weights) / mean_a.clamp(min=torch.finfo(torch.float32).tiny), 0.0)
    return (1 - ratio) * f + ratio * scale[:, None, None] * a


def _ffn_weights(mlp: nn.Module, idx: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(W_up, W_down)`` of a gated FFN; fused ``gate_up_proj`` is not supported."""
    w_up = getattr(getattr(mlp, "up_proj", None), "weight", None)
    w_down = getattr(getattr(mlp, "down_proj", None), "weight", None)
    if not (isinstance(w_up, torch.Tensor) and isinstance(w_down, torch.Tensor)):
        raise VariantError(f"MemVR: the FFN of decoder layer {idx} has no up_proj/down_proj weights")
    return w_up, w_down


class _OneImage:
    """The memory slots of one image per row (the first or the last, in prompt order).

    The prompt's ``input_ids`` are captured at prefill by a pre-hook on the top-level model (the
    forward state keeps only the image mask); images are told apart by
    :func:`pvm_bench.probes.images.image_index` (tiled Idefics3/SmolVLM layouts included).
    """

    def __init__(self, lm: LoadedModel, which: str) -> None:
        self.which = which
        self.closing = closing_marker_id(getattr(lm, "tokenizer", None))
        self.ids: torch.Tensor | None = None
        self._cache: tuple[int, torch.Tensor] | None = None

    def capture(self, module: nn.Module, args: tuple, kwargs: dict) -> None:
        ids = kwargs.get("input_ids")
        if ids is None and args and torch.is_tensor(args[0]) and not args[0].is_floating_point():
            ids = args[0]
        if ids is not None and cached_length(kwargs) == 0:
            self.ids = ids

    def mask(self, state: VisualState) -> torch.Tensor:
        """``[B, N]`` memory mask restricted to the chosen image (cached per memory version)."""
        assert state.memory_mask is not None and state.image_mask is not None
        if self._cache is not None and self._cache[0] == state.version:
            return self._cache[1]
        img = state.image_mask
        known = self.ids is not None and tuple(self.ids.shape) == tuple(img.shape)
        ids = self.ids if known else torch.zeros_like(img, dtype=torch.long)
        index = image_index(ids, img, self.closing if known else None)
        out = torch.zeros_like(state.memory_mask)
        for b in range(out.shape[0]):
            row = index[b][img[b].cpu()]
            if row.numel():
                target = int(row.max()) if self.which == "last" else 0
                n = min(row.numel(), out.shape[1])
                out[b, :n] = (row[:n] == target).to(out.device)
        out &= state.memory_mask.bool() if out.dtype == torch.bool else state.memory_mask
        self._cache = (state.version, out)
        return out


@contextlib.contextmanager
def memvr_active(lm: LoadedModel, config: MemVRConfig) -> Iterator[MemVRStats]:
    """Run ``lm`` with MemVR; all hooks are removed on exit (also on exceptions).

    Raises:
        pvm_bench.variants.VariantError: the language model exposes no final ``norm``/lm_head,
            or a retracing layer's FFN has no ``up_proj``/``down_proj``.
    """
    stats = MemVRStats()
    if config.off:  # zero strength: nothing is installed, the model is exactly base
        yield stats
        return
    inst = instrument_for(lm)
    run = config.resolve(lm.spec.model_type, lm.num_layers)
    if run.ratio == 0:
        yield stats
        return
    try:
        lens = inst.sites.lens()
        if not run.recipe.lens_final_norm:  # the Qwen recipe's lens: lm_head on the raw layer output
            lens = LogitLens(nn.Identity(), inst.sites.module("lm_head"), lens.softcap)
    except SiteError as exc:
        raise VariantError(
            f"MemVR needs the language model's final `norm` and lm_head ({lm.spec.name}): {exc}"
        ) from None
    triggers = run.trigger_layers(lm.num_layers)
    if not len(triggers):
        raise VariantError(
            f"MemVR: no layer L with {run.start} < L < {run.end} and L+1 < {lm.num_layers} in this "
            f"{lm.num_layers}-layer "
            "model; pass memvr:start=...:end=... (e.g. memvr:start=-1:end=2)"
        )
    images = _OneImage(lm, run.recipe.image)
    weights: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
    for i in triggers:
        try:
            mlp = inst.sites.module(f"layers.{i + 1}.mlp")
        except SiteError as exc:
            raise VariantError(f"MemVR: {exc}") from None
        weights[i + 1] = _ffn_weights(mlp, i + 1)

    def forward_state(state: VisualState) -> dict[str, Any] | None:
        """This forward's MemVR bookkeeping (rows retraced, pending retracing), in the state's scratch."""
        if state.bypass:
            return None
        fwd = state.scratch.get("memvr")
        if fwd is None:
            memory = state.memory
            if memory is None or memory.shape[1] == 0:
                return None
            done = torch.zeros(memory.shape[0], dtype=torch.bool, device=memory.device)
            fwd = state.scratch["memvr"] = {"done": done, "pending": None}
        return fwd

    def make_trigger(idx: int, state: VisualState):
        def post(module: nn.Module, args: tuple, output: Any) -> None:
            fwd = forward_state(state)
            if fwd is None or bool(fwd["done"].all()):
                return
            done = fwd["done"]
            h = layer_output(output)
            with torch.no_grad():
                fire = (topk_entropy(lens(h[:, -1, :])) > run.threshold).to(done.device) & ~done
            if idx == triggers.start:
                stats.forwards += int(done.shape[0])
            if bool(fire.any()):
                fwd["done"] = done | fire
                fwd["pending"] = (idx + 1, fire)

        return post

    def make_retrace(idx: int, state: VisualState):
        w_up, w_down = weights[idx]

        def post(module: nn.Module, args: tuple, kwargs: dict, output: Any) -> Any:
            fwd = state.scratch.get("memvr")
            memory = state.memory
            if fwd is None or state.bypass:
                return None
            pending = fwd["pending"]
            if pending is None or pending[0] != idx or memory is None or state.memory_mask is None:
                return None
            fwd["pending"] = None
            memory_mask = images.mask(state)  # Z = one image's features (recipe.image)
            # Rows without image tokens (or with all-zero visual embeddings) have nothing to retrace.
            has_memory = (memory.abs().sum(-1) * memory_mask).sum(-1) > 0
            fire = pending[1] & has_memory.to(pending[1].device)
            if not bool(fire.any()):
                return None
            x = hidden_arg(args, kwargs)
            mask = state.attention_mask  # [B, keys]; its last columns are this forward's positions
            positions = mask[:, -x.shape[1]:] if mask is not None and mask.shape[1] >= x.shape[1] else None
            new = retrace(x, output, memory.to(x.device), memory_mask.to(x.device), w_up, w_down,
                          run.ratio, positions, silu=run.recipe.silu).to(output.dtype)
            n = int(fire.sum())
            stats.retraced += n
            stats.by_layer[idx] = stats.by_layer.get(idx, 0) + n
            return torch.where(fire.to(output.device)[:, None, None], new, output)

        return post

    with capture_visual(lm) as state:
        handles = [inst.sites.hook("model", images.capture, pre=True, with_kwargs=True)]
        try:
            for i in triggers:
                handles.append(inst.sites.hook(f"layers.{i}", make_trigger(i, state)))
                handles.append(inst.sites.hook(f"layers.{i + 1}.mlp", make_retrace(i + 1, state), with_kwargs=True))
            yield stats
        finally:
            for h in handles:
                h.remove()


def _describe(c: MemVRConfig) -> str:
    recipe = ("the family's official recipe (Qwen2/2.5/3-VL: modeling_qwen.py, SiLU retrace, lens without final norm, "
              "first image, 9<L<16 ratio 0.28; others: memvr.py, last image, 5<L<16 ratio 0.12; windows at 32 layers, "
              "scaled by depth)" if c.recipe == "auto" else f"the official '{c.recipe}' recipe")
    overrides = ", ".join(f"{k}={getattr(c, k)}" for k in ("ratio", "start", "end") if getattr(c, k) is not None)
    return (
        f"MemVR (Zou et al. 2025, github.com/1zhou-Wang/MemVR): top-10 logit-lens entropy > {c.threshold} at a layer L "
        f"retraces one image's visual tokens into layer L+1's FFN; {recipe}{'; ' + overrides if overrides else ''}"
    )


def _effective(lm: LoadedModel, c: MemVRConfig) -> dict[str, Any]:
    """The recipe, ratio and window MemVR runs with on ``lm`` (run.json), with the recipe's source."""
    return {"family": lm.spec.model_type, **c.resolve(lm.spec.model_type, lm.num_layers).describe()}


VARIANT = fix_variant("memvr", MemVRConfig(), _describe, memvr_active, _effective)
