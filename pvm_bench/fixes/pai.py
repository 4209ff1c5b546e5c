"""PAI: "Paying More Attention to Image" (Liu, Zheng, Chen; ECCV 2024, arXiv 2407.21771).

What PAI does (reference code: github.com/LALBJ/PAI, ``pai/attention.py``, the patched LLaMA
attention forward). After the attention logits ``s = q k^T / sqrt(d)`` (mask already added),
for the layers ``start_layer <= l < end_layer`` and only for the LAST query row:

    s[:, :, -1, img_start:img_end] = s[:, :, -1, img_start:img_end] + alpha * |s[:, :, -1, img_start:img_end]|

i.e. every image-key logit is pushed up by ``alpha`` times its magnitude, in every head, before
the softmax. It acts at the prefill forward's last prompt position and at every decode step.
Defaults here: ``alpha = 0.5`` (the value the brief attributes to the paper; the reference
README's example commands use per-model values, so pass ``pai:alpha=...`` to match a specific
setting), ``start_layer = 2`` (the reference skips the first two, "shallow", layers),
``end_layer = None`` (= all layers; the reference's 32 for LLaVA-1.5-7B is all of them).
``alpha = 0`` is bit-identical to ``base`` (the intervention passes every call through untouched).

How it is applied here (composes with the streaming attention probe). transformers'
``sdpa_attention_forward`` takes an additive ``position_bias`` (``[B, H, q, keys]``) and
folds it into the mask; the streaming probe (:mod:`pvm_bench.probes.attention`) forwards its
kwargs to that function and also adds ``position_bias[:, :, -1, :]`` to the scores it measures.
So PAI is a thin attention function registered with ``AttentionInterface`` (and the inner
backend's mask function with ``AttentionMaskInterface``) that wraps whatever the text decoder
used when the variant was entered (``sdpa`` or the probe's ``pvm_bench_streaming``): for PAI's
layers it computes ``alpha * |s_last|`` on image keys (``[B, H, n]``, GQA folded, no
``[q, keys]`` logits are formed) and calls the inner function with that ``position_bias``.
The output and the probe's ``visual_mass`` therefore both see the boosted logits. Cost: at
prefill the bias is a ``[B, H, q, keys]`` tensor (zero except the last row), the size of one
eager attention map; decode steps only add ``[B, H, 1, keys]``.

Contrastive part (PAI's "image-free input" CFG, ``gamma = 1.1`` in the reference:
``logp = gamma * logp_cond - (gamma - 1) * logp_uncond`` restricted to tokens with
``p_cond >= 0.1 * max p_cond``): NOT implemented yet; ``gamma`` is accepted only at its
no-op value 1.0 and any other value raises. TODO: a logits processor running the image-free
prompt (image placeholders removed) with its own KV cache, with PAI's boost off and the probes
bypassed in that forward, and Qwen-VL's cached ``rope_deltas`` saved/restored around it.
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from pvm_bench.fixes import VisualState, capture_visual, register_fix

if TYPE_CHECKING:
    from pvm_bench.models.loading import LoadedModel

NAME_PREFIX = "pvm_bench_pai__"
"""Registered attention name = prefix + the wrapped backend's name."""

SUPPORTED_INNER = ("sdpa", "pvm_bench_streaming")
"""Backends whose functions honour ``position_bias`` (transformers' sdpa and the probe's wrapper of it)."""


@dataclass(frozen=True)
class PAIConfig:
    """PAI hyperparameters (defaults and sources in the module docstring)."""

    alpha: float = 0.5
    start_layer: int = 2
    end_layer: int | None = None
    gamma: float = 1.0

    def __post_init__(self) -> None:
        if self.alpha < 0:
            raise ValueError("alpha must be >= 0")
        if self.gamma != 1.0:
            raise ValueError("contrastive decoding (gamma != 1) is not implemented yet; use gamma=1")


@dataclass
class _Target:
    alpha: float
    state: VisualState


# Self-attention module -> its PAI setting while a PAI variant is active (weak: no model kept alive).
_TARGETS: weakref.WeakKeyDictionary[nn.Module, _Target] = weakref.WeakKeyDictionary()
_REGISTERED: set[str] = set()


def _image_key_bias(
    query: torch.Tensor, key: torch.Tensor, scaling: float | None, softcap: float | None, alpha: float,
    img: torch.Tensor,
) -> torch.Tensor:
    """``alpha * |s_last|`` on image keys, 0 elsewhere: ``[B, H, n]`` in the query dtype.

    ``s_last`` is the last query row's logit (after soft-capping, as the mask is added after it).
    """
    B, H, _, D = query.shape
    h_kv, n = key.shape[1], key.shape[2]
    q = query[:, :, -1, :].reshape(B, h_kv, H // h_kv, D)  # GQA: fold query heads onto kv heads
    scale = scaling if scaling is not None else D**-0.5
    s = torch.matmul(q, key.transpose(-1, -2)).float() * scale  # [B, h_kv, g, n]
    if softcap is not None:
        s = torch.tanh(s / softcap) * softcap
    bias = alpha * s.abs().reshape(B, H, n) * img[:, None, :]
    return bias.to(query.dtype)


def _make_forward(inner_name: str):
    """The PAI attention function wrapping the registered backend ``inner_name``."""

    def pai_attention_forward(
        module: nn.Module,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        attention_mask: torch.Tensor | None,
        **kwargs: Any,
    ) -> tuple[torch.Tensor, Any]:
        from transformers import AttentionInterface

        inner = AttentionInterface()[inner_name]
        target = _TARGETS.get(module)
        state = target.state if target is not None else None
        if target is None or target.alpha == 0 or state is None or state.bypass or state.image_mask is None:
            return inner(module, query, key, value, attention_mask, **kwargs)
        n, q_len = key.shape[2], query.shape[2]
        img = target.state.key_image_mask(n).to(query.device)
        bias = _image_key_bias(query, key, kwargs.get("scaling"), kwargs.get("softcap"), target.alpha, img)
        if q_len == 1:
            position_bias = bias[:, :, None, :]
        else:  # only the last query row is boosted (reference: attn_weights[:, :, -1, img])
            position_bias = query.new_zeros(query.shape[0], query.shape[1], q_len, n)
            position_bias[:, :, -1, :] = bias
        if kwargs.get("position_bias") is not None:
            position_bias = position_bias + kwargs["position_bias"]
        kwargs["position_bias"] = position_bias
        return inner(module, query, key, value, attention_mask, **kwargs)

    return pai_attention_forward


def _register(inner_name: str) -> str:
    """Register the PAI function wrapping ``inner_name`` and the inner backend's mask function."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface

    name = NAME_PREFIX + inner_name
    if name not in _REGISTERED:
        AttentionInterface.register(name, _make_forward(inner_name))
        AttentionMaskInterface.register(name, AttentionMaskInterface()[inner_name])
        _REGISTERED.add(name)
    return name


@contextlib.contextmanager
def pai_active(lm: LoadedModel, config: PAIConfig) -> Iterator[VisualState]:
    """Run ``lm`` with PAI's image-attention boost; everything is restored on exit.

    Raises:
        pvm_bench.variants.VariantError: the text decoder uses a backend other than sdpa or the
            streaming probe (eager/flash kernels take no additive logit bias), or a layer has no
            ``self_attn``.
    """
    from pvm_bench.probes.attention import find_attention_modules, text_subconfig_key
    from pvm_bench.probes.base import ProbeError
    from pvm_bench.variants import VariantError

    hf = lm.hf_model
    text_config = lm.text_config
    inner = text_config._attn_implementation
    if inner not in SUPPORTED_INNER:
        raise VariantError(
            f"PAI needs the text decoder on sdpa (got '{inner}'); load with attn_implementation='sdpa'"
        )
    try:
        modules = find_attention_modules(lm)
    except ProbeError as exc:  # no `self_attn` in a decoder layer
        raise VariantError(f"PAI: {exc}") from None
    end = lm.num_layers if config.end_layer is None else min(config.end_layer, lm.num_layers)
    text_key = text_subconfig_key(lm.config)

    def set_impl(impl: str) -> None:
        hf.set_attn_implementation(impl if text_key is None else {text_key: impl})

    with capture_visual(lm) as state:
        name = _register(inner)
        targeted = [m for i, m in enumerate(modules) if config.start_layer <= i < end]
        try:
            for m in targeted:
                _TARGETS[m] = _Target(config.alpha, state)
            set_impl(name)
            if text_config._attn_implementation != name:
                raise VariantError(f"PAI: could not switch the text decoder to '{name}'")
            yield state
        finally:
            for m in targeted:
                _TARGETS.pop(m, None)
            set_impl(inner)


def _describe(c: PAIConfig) -> str:
    return (
        f"PAI (Liu et al. 2024): image-key attention logits += alpha*|logit| at layers >= "
        f"{c.start_layer}, alpha={c.alpha}"
    )


register_fix("pai", PAIConfig(), _describe, pai_active)
