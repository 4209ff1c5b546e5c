"""The ``layers.{i}.attn`` site: one attention function that dispatches to every subscriber.

One function is registered with transformers' ``AttentionInterface`` under :data:`ATTN_NAME`
together with the stock ``sdpa_mask`` under the same name in ``AttentionMaskInterface`` (a name
missing from the mask interface makes transformers skip mask creation, silently dropping the
causal/padding mask). While at least one subscriber is attached, only the *text* sub-config of
the model is switched to that name (the vision tower keeps its backend); the last one to leave
restores the original backend.

Per call of a decoder self-attention module the function

1. asks every *writer* (PAI) for an additive logit bias on the LAST query row ``[B, H, n]``
   (applied after the mask, as sdpa's ``position_bias``);
2. computes the output exactly as ``sdpa_attention_forward`` does (eager with logit soft-capping,
   which sdpa cannot do), so with no bias tokens are identical to plain sdpa;
3. hands the query, keys, mask and final bias to every *reader* (the attention probe), which
   computes the softmax of the last query row only (nothing ``[q, keys]``-shaped is formed).

Calls made while :attr:`~pvm_bench.instrument.state.ForwardState.bypass` is set, and calls of
modules that are not decoder self-attention (a vision tower sharing the config, a PVM
cross-attention) get the plain output and are never seen by subscribers.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import torch
from torch import nn
from transformers.integrations.sdpa_attention import sdpa_attention_forward

from pvm_bench.errors import UserError

if TYPE_CHECKING:
    from pvm_bench.instrument.state import ForwardState

ATTN_NAME = "pvm_bench_streaming"
"""The name under which the dispatching function and its mask are registered with transformers."""


class AttentionSiteError(UserError, RuntimeError):
    """The model's text attention cannot be routed through the dispatching function."""


class AttentionWriter(Protocol):
    def attention_bias(self, layer: int, query: torch.Tensor, key: torch.Tensor, scaling: float | None,
                       softcap: float | None, state: ForwardState) -> torch.Tensor | None:
        """Additive bias ``[B, H, n]`` for the last query row of ``layer``, or ``[B, H|1, q, n]`` for
        every query row of the call (None = none)."""


class AttentionReader(Protocol):
    def observe_attention(self, layer: int, query: torch.Tensor, key: torch.Tensor, mask: torch.Tensor | None,
                          scaling: float | None, softcap: float | None, position_bias: torch.Tensor | None,
                          state: ForwardState) -> None:
        """See the call's query ``[B, H, q, D]`` / keys ``[B, H_kv, n, D]`` (must not change them)."""


@dataclass
class _Target:
    site: AttentionSite
    layer: int


# Decoder self-attention module -> its site and layer. Weak keys: a discarded model is not kept alive.
_TARGETS: weakref.WeakKeyDictionary[nn.Module, _Target] = weakref.WeakKeyDictionary()
_REGISTERED = False


def _register() -> None:
    """Register the dispatching function and its mask function with transformers (idempotent)."""
    global _REGISTERED
    if _REGISTERED:
        return
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(ATTN_NAME, dispatching_attention_forward)
    # The output is computed with sdpa, so the mask must be sdpa's (boolean, True = attend).
    AttentionMaskInterface.register(ATTN_NAME, sdpa_mask)
    _REGISTERED = True


def apply_mask(scores: torch.Tensor, mask: torch.Tensor | None, causal_if_none: bool) -> torch.Tensor:
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


def softcap_attention(module: nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                      attention_mask: torch.Tensor | None, dropout: float, scaling: float | None, softcap: float,
                      position_bias: torch.Tensor | None = None) -> torch.Tensor:
    """Eager attention with logit soft-capping (sdpa cannot softcap); returns ``[B, q, H, D]``."""
    n_rep = query.shape[1] // key.shape[1]
    if n_rep > 1:
        key = key.repeat_interleave(n_rep, dim=1)
        value = value.repeat_interleave(n_rep, dim=1)
    scale = scaling if scaling is not None else query.shape[-1] ** -0.5
    scores = torch.matmul(query, key.transpose(-1, -2)) * scale
    scores = torch.tanh(scores / softcap) * softcap
    scores = apply_mask(scores, attention_mask, causal_if_none=query.shape[2] > 1)
    if position_bias is not None:
        scores = scores + position_bias
    probs = torch.softmax(scores, dim=-1, dtype=torch.float32).to(query.dtype)
    probs = torch.nn.functional.dropout(probs, p=dropout, training=module.training)
    return torch.matmul(probs, value).transpose(1, 2).contiguous()


def plain_attention(module: nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                    attention_mask: torch.Tensor | None, dropout: float = 0.0, scaling: float | None = None,
                    is_causal: bool | None = None, **kwargs: Any) -> tuple[torch.Tensor, None]:
    """The output as ``sdpa_attention_forward`` computes it (eager when soft-capped); nobody observes."""
    softcap = kwargs.pop("softcap", None)
    if softcap is not None:
        out = softcap_attention(module, query, key, value, attention_mask, dropout, scaling, softcap,
                                kwargs.get("position_bias"))
        return out, None
    out, _ = sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                    is_causal=is_causal, **kwargs)
    return out, None


def last_row_bias(bias: torch.Tensor, q_len: int, n: int) -> torch.Tensor:
    """A ``[B, H, n]`` bias of the last query row as a ``[B, H, q, n]`` position bias (other rows 0)."""
    if q_len == 1:
        return bias[:, :, None, :]
    out = bias.new_zeros(bias.shape[0], bias.shape[1], q_len, n)
    out[:, :, -1, :] = bias
    return out


def dispatching_attention_forward(module: nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                                  attention_mask: torch.Tensor | None, dropout: float = 0.0,
                                  scaling: float | None = None, is_causal: bool | None = None,
                                  **kwargs: Any) -> tuple[torch.Tensor, None]:
    """Attention with ``sdpa_attention_forward`` semantics, plus the subscribers of the module's site.

    ``query`` is ``[B, H, q, D]``, ``key``/``value`` ``[B, H_kv, k, D]``.
    """
    target = _TARGETS.get(module)
    if target is None:
        return plain_attention(module, query, key, value, attention_mask, dropout, scaling, is_causal, **kwargs)
    site, layer = target.site, target.layer
    state = site.state
    if state.bypass:
        return plain_attention(module, query, key, value, attention_mask, dropout, scaling, is_causal, **kwargs)
    softcap = kwargs.get("softcap")
    if site.writers:
        bias = None
        for writer in site.writers:
            b = writer.attention_bias(layer, query, key, scaling, softcap, state)
            if b is not None:
                # [B, H, n] = the last query row; a 4-D [B, H|1, q, n] bias covers every row (blind).
                b = b if b.dim() == 4 else last_row_bias(b, query.shape[2], key.shape[2])
                bias = b if bias is None else bias + b
        if bias is not None:
            combined = bias.to(query.dtype)
            if kwargs.get("position_bias") is not None:
                combined = combined + kwargs["position_bias"]
            kwargs["position_bias"] = combined
    position_bias: torch.Tensor | None = kwargs.get("position_bias")
    out, _ = plain_attention(module, query, key, value, attention_mask, dropout, scaling, is_causal, **kwargs)
    for reader in site.readers:
        reader.observe_attention(layer, query, key, attention_mask, scaling, softcap, position_bias, state)
    return out, None


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


class AttentionSite:
    """The attention subscribers of one model; switches its text backend while any is attached."""

    def __init__(self, hf_model: Any, modules: list[nn.Module], state: ForwardState, family_name: str) -> None:
        self.hf_model: Any = hf_model
        self.modules = modules
        self.state = state
        self.family_name = family_name
        self.writers: list[AttentionWriter] = []
        self.readers: list[AttentionReader] = []
        self.original_impl: str | None = None
        self._text_key = text_subconfig_key(hf_model.config)

    @property
    def active(self) -> bool:
        return bool(self.writers or self.readers)

    def subscribe(self, subscriber: Any, *, read: bool = False, write: bool = False) -> Any:
        """Attach ``subscriber`` as a reader and/or writer; returns a function that detaches it.

        Raises:
            AttentionSiteError: the model does not dispatch attention through ``AttentionInterface``
                or its text backend could not be switched.
        """
        if not self.active:
            self._enter()
        if read:
            self.readers.append(subscriber)
        if write:
            self.writers.append(subscriber)

        def remove() -> None:
            for group in (self.readers, self.writers):
                while subscriber in group:
                    group.remove(subscriber)
            if not self.active:
                self._leave()

        return remove

    def _set_impl(self, impl: str) -> None:
        hf: Any = self.hf_model
        hf.set_attn_implementation(impl if self._text_key is None else {self._text_key: impl})

    def _enter(self) -> None:
        hf: Any = self.hf_model
        if not getattr(hf, "_can_set_attn_implementation", lambda: False)():
            raise AttentionSiteError(
                f"{self.family_name}: {type(hf).__name__} does not dispatch attention through "
                "transformers' AttentionInterface, so the attention site cannot be installed"
            )
        _register()
        text_config = hf.config.get_text_config()
        self.original_impl = text_config._attn_implementation
        self._set_impl(ATTN_NAME)
        if text_config._attn_implementation != ATTN_NAME:
            self._set_impl(self.original_impl)
            raise AttentionSiteError(
                f"{self.family_name}: could not switch the text decoder to the dispatching attention "
                f"function (it stayed '{text_config._attn_implementation}')"
            )
        for layer, module in enumerate(self.modules):
            _TARGETS[module] = _Target(self, layer)

    def _leave(self) -> None:
        for module in self.modules:
            _TARGETS.pop(module, None)
        if self.original_impl is not None:
            self._set_impl(self.original_impl)
        self.original_impl = None
