"""Named hook sites of a VLM, resolved from the family table (TransformerLens-style names).

Site names (``i`` = decoder layer index):

=========================  ======================================================================
``layers.{i}``             the decoder layer: pre-hook sees its input residual, hook its output
``layers.{i}.attn``        the self-attention module (last-query scores: :mod:`.attention`)
``layers.{i}.ffn_in``      the module whose input is the residual after self-attention, before the
                           FFN (the FFN pre-norm); a pre-hook reads that residual ``h``
``layers.{i}.ffn_out``     the module whose output the layer adds to ``h`` (the FFN, or its post-norm);
                           a hook may return a replacement (PVM adds its branch here)
``layers.{i}.mlp``         the gated FFN itself (``up_proj``/``down_proj``)
``final_norm``             the language model's final norm
``lm_head``                the output embeddings
``model``                  the top-level model (a hook sees the logits output)
=========================  ======================================================================

Which submodule each name maps to comes only from :class:`~pvm_bench.models.families.FamilySpec`
(``attention_module``, ``ffn_input_modules``, ``ffn_output_modules``, ``mlp_module``,
``final_norm``); nothing here branches on a family.
"""

from __future__ import annotations

import re
from typing import Any

import torch
from torch import nn

from pvm_bench.errors import UserError
from pvm_bench.models.families import FamilySpec, resolve_path

_LAYER_SITE = re.compile(r"^layers\.(\d+)(?:\.(attn|ffn_in|ffn_out|mlp))?$")
SITE_KINDS = ("attn", "ffn_in", "ffn_out", "mlp")


class SiteError(UserError, RuntimeError):
    """A hook site does not exist on this model; the message names the module and the fix."""


def _first_child(layer: nn.Module, names: tuple[str, ...]) -> nn.Module | None:
    for name in names:
        module = getattr(layer, name, None)
        if isinstance(module, nn.Module):
            return module
    return None


class Sites:
    """Resolves site names to modules of one model and registers hooks on them."""

    def __init__(self, hf_model: Any, family: FamilySpec) -> None:
        self.hf_model: Any = (
            hf_model  # a transformers model (typed loosely: nn.Module stubs type attributes as Tensor | Module)
        )
        self.family = family
        self.language_model: Any = resolve_path(hf_model, family.language_model_path)
        self.layers: Any = resolve_path(hf_model, family.layers_path)

    @property
    def num_layers(self) -> int:
        return len(self.layers)

    def module(self, site: str) -> nn.Module:
        """The module behind ``site``.

        Raises:
            SiteError: unknown name, layer out of range, or the family's layer lacks the submodule.
        """
        if site == "model":
            return self.hf_model
        if site == "final_norm":
            norm = getattr(self.language_model, self.family.final_norm, None)
            if not isinstance(norm, nn.Module):
                raise SiteError(f"{self.family.name}: the language model has no final `{self.family.final_norm}` "
                                "module (set final_norm in the family table)")
            return norm
        if site == "lm_head":
            head = self.hf_model.get_output_embeddings()
            if not isinstance(head, nn.Module):
                raise SiteError(f"{self.family.name}: the model exposes no output embeddings (lm_head)")
            return head
        match = _LAYER_SITE.match(site)
        if match is None:
            raise SiteError(f"unknown hook site '{site}'; known: layers.N, layers.N.{{{','.join(SITE_KINDS)}}}, "
                            "final_norm, lm_head, model")
        idx, kind = int(match.group(1)), match.group(2)
        if not 0 <= idx < len(self.layers):
            raise SiteError(f"hook site '{site}': layer {idx} out of range for {len(self.layers)} decoder layers")
        layer = self.layers[idx]
        if kind is None:
            return layer
        names: tuple[str, ...] = {
            "attn": (self.family.attention_module,),
            "ffn_in": self.family.ffn_input_modules,
            "ffn_out": self.family.ffn_output_modules,
            "mlp": (self.family.mlp_module,),
        }[kind]
        module = _first_child(layer, names)
        if module is None:
            raise SiteError(
                f"{self.family.name}: decoder layer {idx} ({type(layer).__name__}) has none of {', '.join(names)} "
                f"for site '{kind}'; add the submodule name to the family table (models/families.py)"
            )
        return module

    def hook(self, site: str, fn: Any, *, pre: bool = False, with_kwargs: bool = False) -> Any:
        """Register ``fn`` as a forward (pre-)hook on ``site``; returns the removable handle."""
        module = self.module(site)
        if pre:
            return module.register_forward_pre_hook(fn, with_kwargs=with_kwargs)
        return module.register_forward_hook(fn, with_kwargs=with_kwargs)

    def lens(self) -> LogitLens:
        """The logit lens of this model (final norm + lm_head, with the family's soft-capping)."""
        return LogitLens(self.module("final_norm"), self.module("lm_head"),
                         getattr(self.hf_model.config.get_text_config(), "final_logit_softcapping", None))


class LogitLens:
    """``lm_head(final_norm(h))`` in float32, soft-capped like the model's own final logits."""

    def __init__(self, norm: Any, head: Any, softcap: float | None) -> None:
        self.norm, self.head, self.softcap = norm, head, softcap

    def __call__(self, hidden: torch.Tensor) -> torch.Tensor:
        logits = self.head(self.norm(hidden)).float()
        if self.softcap:
            logits = torch.tanh(logits / self.softcap) * self.softcap
        return logits


def hidden_arg(args: tuple, kwargs: dict) -> torch.Tensor:
    """The ``hidden_states`` input of a decoder layer / MLP call (first positional or keyword)."""
    if args:
        return args[0]
    return kwargs["hidden_states"]


def replace_hidden_arg(args: tuple, kwargs: dict, value: torch.Tensor) -> tuple[tuple, dict]:
    """``(args, kwargs)`` with the ``hidden_states`` input replaced (for a pre-hook's return value)."""
    if args:
        return (value, *args[1:]), kwargs
    return args, {**kwargs, "hidden_states": value}


def layer_output(output: Any) -> torch.Tensor:
    """The hidden states of a decoder layer's output (a tensor or a tuple starting with one)."""
    return output[0] if isinstance(output, (tuple, list)) else output
