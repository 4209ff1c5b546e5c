"""Streaming visual-attention probe: softmax mass on image keys at every step and decoder layer.

How it works. The probe registers one attention function with transformers'
``AttentionInterface`` and the stock ``sdpa_mask`` under the same name with
``AttentionMaskInterface`` (a name missing from the mask interface makes transformers skip mask
creation, silently dropping the causal/padding mask), and switches only the *text* sub-config of
the model to that name, so the vision tower keeps its own backend. The function computes the
attention output exactly as ``sdpa_attention_forward`` does (so generated tokens are identical
to plain sdpa) and, when the calling module is one of the probed decoder self-attention modules,
additionally computes the softmax of the LAST query row only (``[B, heads, 1, keys]``, GQA by
folding the query heads onto their key/value head instead of repeating K). Nothing
``[q, keys]``-shaped is ever materialised; per-step results go into small preallocated tensors
on the model's device and are turned into records once per batch (no host sync per step).

Step convention (see :mod:`pvm_bench.probes.base`): step 0 is the prefill forward (the query at
the last prompt position), step t >= 1 is the decode forward that feeds generated token t.

Key positions. Keys of a call cover absolute positions ``[total - n, total)`` where ``total`` is
the sequence length so far and ``n`` the number of keys passed (sliding-window caches keep only
the most recent keys). Image keys are the prompt positions flagged in ``BatchContext.image_mask``;
keys beyond the prompt are generated text. ``n_keys``/``n_visual`` count the keys the mask lets
the last query see (left padding and out-of-window keys excluded).
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from transformers.integrations.sdpa_attention import sdpa_attention_forward

from pvm_bench.probes.base import BatchContext, Probe, ProbeError
from pvm_bench.results import compact_frame

if TYPE_CHECKING:
    from pvm_bench.models.loading import LoadedModel

ATTN_NAME = "pvm_bench_streaming"
"""The name under which the streaming function and its mask are registered with transformers."""

RECORD_KEYS = ("step", "layer", "visual_mass", "visual_mass_norm", "sink_mass", "n_keys", "n_visual")
"""Keys of every attention record (plus ``visual_mass_heads`` when ``per_head`` is set)."""


@dataclass
class _Target:
    """A probed attention module: which probe owns it and which decoder layer it belongs to."""

    probe: AttentionProbe
    layer: int


# Probed modules -> owner. Weak keys: a discarded model must not be kept alive by the registry.
_TARGETS: weakref.WeakKeyDictionary[nn.Module, _Target] = weakref.WeakKeyDictionary()
_REGISTERED = False


def _register() -> None:
    """Register the streaming function and its mask function with transformers (idempotent)."""
    global _REGISTERED
    if _REGISTERED:
        return
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(ATTN_NAME, streaming_attention_forward)
    # The output is computed with sdpa, so the mask must be sdpa's (boolean, True = attend).
    AttentionMaskInterface.register(ATTN_NAME, sdpa_mask)
    _REGISTERED = True


def _softcap_attention(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float,
    scaling: float | None,
    softcap: float,
) -> torch.Tensor:
    """Eager attention with logit soft-capping (sdpa cannot softcap); returns ``[B, q, H, D]``."""
    n_rep = query.shape[1] // key.shape[1]
    if n_rep > 1:
        key = key.repeat_interleave(n_rep, dim=1)
        value = value.repeat_interleave(n_rep, dim=1)
    scale = scaling if scaling is not None else query.shape[-1] ** -0.5
    scores = torch.matmul(query, key.transpose(-1, -2)) * scale
    scores = torch.tanh(scores / softcap) * softcap
    scores = _apply_mask(scores, attention_mask, causal_if_none=query.shape[2] > 1)
    probs = torch.softmax(scores, dim=-1, dtype=torch.float32).to(query.dtype)
    probs = torch.nn.functional.dropout(probs, p=dropout, training=module.training)
    return torch.matmul(probs, value).transpose(1, 2).contiguous()


def _apply_mask(scores: torch.Tensor, mask: torch.Tensor | None, causal_if_none: bool) -> torch.Tensor:
    """Apply a boolean (True = attend) or additive float mask to ``scores [B, H, q, k]``."""
    if mask is None:
        if not causal_if_none:
            return scores
        q, k = scores.shape[-2:]
        # Bottom-right aligned causal mask (queries are the last q of the k positions).
        allowed = torch.ones(q, k, dtype=torch.bool, device=scores.device).tril(k - q)
        return scores.masked_fill(~allowed, float("-inf"))
    if mask.dtype == torch.bool:
        return scores.masked_fill(~mask, float("-inf"))
    return scores + mask


def streaming_attention_forward(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    is_causal: bool | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """Attention with ``sdpa_attention_forward`` semantics plus the probe's last-row measurement.

    ``query`` is ``[B, H, q, D]``, ``key``/``value`` ``[B, H_kv, k, D]``. Modules that are not
    registered probe targets (a vision tower that shares the config, a PVM cross-attention) get
    the plain output and are never recorded.
    """
    softcap = kwargs.pop("softcap", None)
    if softcap is not None:
        out = _softcap_attention(module, query, key, value, attention_mask, dropout, scaling, softcap)
    else:
        out, _ = sdpa_attention_forward(
            module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, is_causal=is_causal, **kwargs
        )
    target = _TARGETS.get(module)
    if target is not None and target.probe._active:
        target.probe._observe(target.layer, query, key, attention_mask, scaling, softcap, kwargs.get("position_bias"))
    return out, None


def find_attention_modules(lm: LoadedModel) -> list[nn.Module]:
    """The self-attention module of every decoder layer of the language model, in layer order.

    Decoder layers name it ``self_attn`` in every transformers VLM family we know; a layer
    without one raises :class:`ProbeError` (we do not guess among submodules, since a PVM
    branch adds a cross-attention to some layers).
    """
    modules = []
    for i, layer in enumerate(lm.layers):
        attn = getattr(layer, "self_attn", None)
        if not isinstance(attn, nn.Module):
            raise ProbeError(
                f"{lm.spec.name}: decoder layer {i} ({type(layer).__name__}) has no `self_attn` module; "
                "the attention probe only supports softmax self-attention layers"
            )
        modules.append(attn)
    return modules


def text_subconfig_key(config: Any) -> str | None:
    """The sub-config key of the text decoder (``text_config`` in all families), or None.

    Found by identity with ``config.get_text_config()`` so no family names are involved.
    """
    text = config.get_text_config()
    if text is config:
        return None
    for key in getattr(config, "sub_configs", {}) or {}:
        if getattr(config, key, None) is text:
            return key
    return None


class AttentionProbe(Probe):
    """Per step and decoder layer: head-averaged softmax mass of the current query on image keys.

    Args:
        per_head: also record ``visual_mass_heads`` (a list of per-head masses) per record.
        sink_threshold: a key is a sink when it takes more than this share of a head's mass in
            more than half of the heads; the first non-padding key is always a sink.

    Records (one per row, step and layer), see :data:`RECORD_KEYS`:
        ``visual_mass``: mean over heads of the summed probability on image keys;
        ``visual_mass_norm``: ``visual_mass / (n_visual / n_keys)`` (1.0 = uniform; NaN when the
        query sees no image key); ``sink_mass``: head-averaged mass on the sink keys, each key
        counted once (reported apart: it overlaps ``visual_mass`` when a sink is an image key);
        ``n_keys``/``n_visual``: keys/image keys visible to the query.
    """

    name = "attention"

    def __init__(self, per_head: bool = False, sink_threshold: float = 0.5) -> None:
        self.per_head = per_head
        self.sink_threshold = float(sink_threshold)
        self._lm: LoadedModel | None = None
        self._modules: list[nn.Module] = []
        self._text_key: str | None = None
        self._orig_impl: str | None = None
        self._active = False
        self._step = -1
        self._calls = 0

    # -- install -----------------------------------------------------------------------------

    def install(self, model: LoadedModel) -> None:
        """Switch the text decoder to the streaming attention function and register its layers.

        Raises:
            ProbeError: the family's decoder layers have no ``self_attn`` or its attention does
                not dispatch through transformers' ``AttentionInterface``.
        """
        if self._lm is not None:
            raise ProbeError("AttentionProbe is already installed; uninstall it first")
        hf = model.hf_model
        if not getattr(hf, "_can_set_attn_implementation", lambda: False)():
            raise ProbeError(
                f"{model.spec.name}: {type(hf).__name__} does not dispatch attention through "
                "transformers' AttentionInterface, so the streaming probe cannot be installed"
            )
        modules = find_attention_modules(model)
        _register()
        text_config = model.text_config
        self._text_key = text_subconfig_key(model.config)
        self._orig_impl = text_config._attn_implementation
        self._set_impl(hf, ATTN_NAME)
        if text_config._attn_implementation != ATTN_NAME:
            self._set_impl(hf, self._orig_impl)
            raise ProbeError(
                f"{model.spec.name}: could not switch the text decoder to the streaming attention "
                f"function (it stayed '{text_config._attn_implementation}')"
            )
        for i, module in enumerate(modules):
            if module in _TARGETS:
                raise ProbeError(f"decoder layer {i} is already probed by another AttentionProbe")
            _TARGETS[module] = _Target(self, i)
        self._lm = model
        self._modules = modules

    def _set_impl(self, hf: nn.Module, impl: str) -> None:
        """Set the attention implementation of the text sub-model only (vision tower untouched)."""
        if self._text_key is None:
            hf.set_attn_implementation(impl)
        else:
            hf.set_attn_implementation({self._text_key: impl})

    def uninstall(self) -> None:
        """Restore the original text attention implementation and forget the probed modules."""
        if self._lm is None:
            return
        for module in self._modules:
            _TARGETS.pop(module, None)
        if self._orig_impl is not None:
            self._set_impl(self._lm.hf_model, self._orig_impl)
        self._lm = None
        self._modules = []
        self._active = False

    # -- per batch ---------------------------------------------------------------------------

    def begin_batch(self, ctx: BatchContext) -> None:
        """Allocate the per-batch result buffers (size ``max_new_tokens x layers x B``)."""
        if self._lm is None:
            raise ProbeError("AttentionProbe.begin_batch called before install()")
        device = self._lm.device
        B, P = ctx.input_ids.shape
        S, L = max(int(ctx.max_new_tokens), 1), len(self._modules)
        # Image flags over every absolute position the batch can reach; generated keys are text.
        img = torch.zeros(B, P + S, dtype=torch.float32, device=device)
        img[:, :P] = ctx.image_mask.to(device=device, dtype=torch.float32)
        self._img = img
        self._prompt_len = P
        # [S, L, 4, B]: visual_mass, sink_mass, n_keys, n_visual (counts are exact in float32).
        self._buf = torch.zeros(S, L, 4, B, dtype=torch.float32, device=device)
        self._heads: torch.Tensor | None = None
        self._n_steps = S
        self._step = -1
        self._total = 0
        self._calls = 0
        self._mask_cache: dict[tuple[int, int, torch.device], Any] = {}
        self._active = True

    def _key_view(
        self, mask: torch.Tensor | None, n: int, device: torch.device
    ) -> tuple[torch.Tensor | None, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """What the last query row may see, cached per (mask tensor, key count) within a step.

        Returns ``(additive mask [B * H_kv, 1, n] or None, image flags [B, n], first-visible-key
        one-hot [B, n] bool, counts [2, B] = (n_keys, n_visual), weights [B, n, 2])`` on ``device`` (the layer's: layers may
        sit on different GPUs under a device map). transformers builds one mask per layer type per forward and passes
        the same tensor to every layer of that type, so this runs once or twice per step.
        """
        cache_key = (id(mask), n, device)
        hit = self._mask_cache.get(cache_key)
        if hit is not None and hit[0] is mask:
            return hit[1]
        B = self._img.shape[0]
        h_kv = self._h_kv
        # Keys are the last n absolute positions (a sliding-window cache keeps only recent ones).
        img = self._img[:, self._total - n : self._total].to(device)
        if mask is None:
            # No mask: the last query of a causal call sees every key passed (no padding).
            additive = None
            allowed = torch.ones(B, n, dtype=torch.bool, device=img.device)
        else:
            row = mask[:, :1, -1, :]  # [B, 1, n]; masks are shared by all heads
            if row.dtype == torch.bool:
                allowed = row[:, 0]
                additive = torch.zeros(row.shape, dtype=torch.float32, device=row.device).masked_fill_(~row, float("-inf"))
            else:
                allowed = row[:, 0] > torch.finfo(row.dtype).min / 2
                additive = row.float()
            # One row per (batch, kv head): the layout the fused score product below uses.
            additive = additive.repeat_interleave(h_kv, dim=0) if h_kv > 1 else additive
        allowed_f = allowed.float()
        first = torch.zeros_like(allowed).scatter_(1, allowed_f.argmax(-1, keepdim=True), True)
        counts = torch.stack((allowed_f.sum(-1), (allowed_f * img).sum(-1)))  # n_keys, n_visual
        # Key weights for the final product: column 0 image flags, column 1 this layer's sinks.
        weights = torch.stack((img, torch.zeros_like(img)), dim=-1)  # [B, n, 2]
        value = (additive, img, first, counts, weights)
        self._mask_cache[cache_key] = (mask, value)
        return value

    def _observe(
        self,
        layer: int,
        query: torch.Tensor,
        key: torch.Tensor,
        mask: torch.Tensor | None,
        scaling: float | None,
        softcap: float | None,
        position_bias: torch.Tensor | None,
    ) -> None:
        """Softmax of the last query row of one attention call; writes into the step's buffer.

        Per call this is one ``[B * H_kv, g, D] x [B * H_kv, D, n]`` product, one softmax over
        ``[B, H, n]`` and a handful of reductions (about a dozen small ops); no host sync.
        """
        q_len, n = query.shape[2], key.shape[2]
        if layer == 0:
            # Layer 0 runs first in every forward: a new step begins. Prefill (q_len > 1) resets.
            self._step = 0 if q_len > 1 or self._step < 0 else self._step + 1
            self._total = self._prompt_len + self._step
            self._mask_cache = {}
        step = self._step
        if step < 0 or step >= self._n_steps:
            return
        self._calls += 1
        B, H, _, D = query.shape
        h_kv = self._h_kv = key.shape[1]
        additive, img, first, counts, weights = self._key_view(mask, n, key.device)
        scale = scaling if scaling is not None else D**-0.5
        # GQA: fold the query heads of each kv group ([B * H_kv, g, D]) instead of repeating K;
        # scale, product and additive mask fused in one baddbmm.
        q = query[:, :, -1, :].reshape(B * h_kv, H // h_kv, D)
        k_t = key.transpose(-1, -2).reshape(B * h_kv, D, n)
        if additive is not None and softcap is None and position_bias is None and q.dtype == torch.float32:
            scores = torch.baddbmm(additive, q, k_t, alpha=scale)
        else:
            scores = torch.bmm(q, k_t).float() * scale
            if softcap is not None:
                scores = torch.tanh(scores / softcap) * softcap
            if position_bias is not None:
                bias = position_bias[:, :, -1, :].float().expand(B, H, n)
                scores = scores + bias.reshape(B * h_kv, H // h_kv, n)
            if additive is not None:
                scores = scores + additive
        probs = torch.softmax(scores.view(B, H, n), dim=-1)  # [B, H, n]
        # A key is a sink when it holds > threshold of the mass in most heads; the first visible
        # key always is. Boolean OR: a key is counted once even when both hold.
        weights[..., 1] = torch.logical_or((probs > self.sink_threshold).sum(1) > H / 2, first)
        mass = torch.matmul(probs.mean(dim=1, keepdim=True), weights)  # [B, 1, 2]: visual, sink
        self._buf[step, layer, :2] = mass[:, 0].T
        self._buf[step, layer, 2:] = counts
        if self.per_head:
            if self._heads is None:
                self._heads = torch.zeros(self._n_steps, len(self._modules), B, H, device=probs.device)
            self._heads[step, layer] = torch.matmul(probs, img.unsqueeze(-1)).squeeze(-1)

    def end_batch(self, n_generated: list[int]) -> list[list[dict[str, Any]]]:
        """Records for steps ``0 .. n_generated[row] - 1`` of every row (see the class docstring).

        Raises:
            ProbeError: generation ran but no probed attention call was seen (the family does
                not route its decoder attention through the registered function).
        """
        if not self._active:
            raise ProbeError("AttentionProbe.end_batch called without begin_batch()")
        self._active = False
        if self._calls == 0 and any(n > 0 for n in n_generated):
            name = self._lm.spec.name if self._lm is not None else "model"
            raise ProbeError(
                f"{name}: no decoder self-attention call reached the streaming attention function; "
                "this family's attention does not dispatch through transformers' AttentionInterface"
            )
        buf = self._buf.cpu().numpy()  # one transfer per batch
        heads = self._heads.cpu().numpy() if self._heads is not None else None
        n_layers = buf.shape[1]
        out: list[list[dict[str, Any]]] = []
        for row, n_gen in enumerate(n_generated):
            n = min(int(n_gen), self._n_steps)
            # Column-wise with numpy, then one dict per (step, layer): the loop only zips.
            cols = buf[:n, :, :, row].reshape(n * n_layers, 4).astype(np.float64)
            visual, sink, n_keys, n_visual = cols.T
            with np.errstate(divide="ignore", invalid="ignore"):
                norm = np.where(n_visual > 0, visual * n_keys / np.where(n_visual > 0, n_visual, 1), np.nan)
            steps = np.repeat(np.arange(n), n_layers).tolist()
            layers = np.tile(np.arange(n_layers), n).tolist()
            per_head = heads[:n, :, row].reshape(n * n_layers, -1).tolist() if heads is not None else None
            records = [
                {
                    "step": st,
                    "layer": la,
                    "visual_mass": vm,
                    "visual_mass_norm": vn,
                    "sink_mass": sm,
                    "n_keys": int(nk),
                    "n_visual": int(nv),
                }
                for st, la, vm, vn, sm, nk, nv in zip(
                    steps, layers, visual.tolist(), norm.tolist(), sink.tolist(), n_keys.tolist(), n_visual.tolist()
                )
            ]
            if per_head is not None:
                for rec, values in zip(records, per_head):
                    rec["visual_mass_heads"] = values
            out.append(records)
        del self._buf, self._img
        self._heads = None
        return out




def records_to_frame(records: list[dict[str, Any]]) -> pd.DataFrame:
    """Attention records as a compact long-format frame.

    Columns: step int32, layer int16, visual_mass / visual_mass_norm / sink_mass float32,
    n_keys / n_visual int32, and ``visual_mass_heads`` as float32 arrays when present (the dtype
    policy of :func:`pvm_bench.results.compact_frame`, which the runner also applies).
    """
    return compact_frame(pd.DataFrame.from_records(records))
