"""Training-free baselines ("fixes") run as variants next to ``base`` and ``pvm``.

Each fix is a small module that registers a :class:`~pvm_bench.variants.Variant` whose context
manager installs hooks on the shared :class:`~pvm_bench.models.loading.LoadedModel` on enter
and removes every one of them on exit (also when generation raises):

- ``pai``     :mod:`pvm_bench.fixes.pai`      boost attention logits on image keys plus image-free
  guidance (:mod:`pvm_bench.fixes.pai_guidance`), as in the official code (Liu et al. 2024);
- ``memvr``   :mod:`pvm_bench.fixes.memvr`    visual retracing into the FFN after an uncertain layer,
  as in the official code (Zou et al. 2025);
- ``reinject`` :mod:`pvm_bench.fixes.reinject` add the mean visual embedding every k tokens (ours).

Hyperparameters are given in the variant name: ``pai:alpha=0.2:start_layer=2`` (colon separated
because ``--variants`` is comma separated). Every fix has a zero-strength setting that is
bit-identical to ``base``.

This module also holds what the fixes share: :class:`VisualState`, a per-generation capture of
the image-token mask, the visual embeddings placed into ``inputs_embeds`` and the step counter,
and :func:`parse_params` for typed ``key=value`` parameters.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from pvm_bench.models.hooks import cached_length

if TYPE_CHECKING:
    from pvm_bench.models.loading import LoadedModel


def parse_params(cls: type, params: Mapping[str, str], variant: str) -> Any:
    """Build dataclass ``cls`` from string ``params``, converting each to its field's default type.

    Raises:
        pvm_bench.variants.VariantError: unknown key or a value of the wrong type.
    """
    from pvm_bench.variants import VariantError

    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, raw in params.items():
        if key not in fields:
            raise VariantError(f"variant '{variant}': unknown parameter '{key}'; known: {', '.join(fields)}")
        default = fields[key].default
        try:
            if raw.lower() in ("none", "null") and default is None:
                kwargs[key] = None
            elif isinstance(default, bool):
                kwargs[key] = raw.lower() in ("1", "true", "yes", "on")
            elif isinstance(default, int) or (default is None and raw.lstrip("-").isdigit()):
                kwargs[key] = int(raw)
            else:
                kwargs[key] = float(raw)
        except ValueError:
            raise VariantError(f"variant '{variant}': parameter {key}={raw!r} is not a number") from None
    try:
        return cls(**kwargs)
    except ValueError as exc:
        raise VariantError(f"variant '{variant}': {exc}") from None


@dataclass
class VisualState:
    """What the fixes know about the forward in flight (filled by :func:`capture_visual`).

    Attributes:
        image_mask: ``[B, P]`` image positions of the last prefill (prompt) forward.
        memory: ``[B, N, H]`` the visual embeddings placed into ``inputs_embeds`` at image
            positions at prefill (rows padded to the longest), ``memory_mask`` ``[B, N]``.
        total: sequence length including the current forward (keys of a full cache are
            positions ``[0, total)``).
        step: 0 during the prefill forward, t during the decode forward feeding generated token t.
        bypass: set by a fix that runs an extra forward of its own (not counted, not intervened).
    """

    image_mask: torch.Tensor | None = None
    memory: torch.Tensor | None = None
    memory_mask: torch.Tensor | None = None
    total: int = 0
    step: int = -1
    bypass: bool = False
    _pending_ids: torch.Tensor | None = field(default=None, repr=False)

    def key_image_mask(self, n_keys: int) -> torch.Tensor:
        """``[B, n_keys]`` float image flags of the keys ``[total - n_keys, total)`` (generated keys are text)."""
        assert self.image_mask is not None
        B, P = self.image_mask.shape
        start = self.total - n_keys
        out = torch.zeros(B, n_keys, dtype=torch.float32, device=self.image_mask.device)
        lo, hi = max(start, 0), min(self.total, P)
        if hi > lo:
            out[:, lo - start : hi - start] = self.image_mask[:, lo:hi].float()
        return out

    @property
    def has_memory(self) -> bool:
        return self.memory is not None and self.memory.shape[1] > 0


@contextlib.contextmanager
def capture_visual(lm: LoadedModel) -> Iterator[VisualState]:
    """Track image positions, visual embeddings and steps of every forward of ``lm`` (hooks removed on exit).

    A pre-hook on the top-level model reads ``input_ids``; a pre-hook on the language model reads
    ``inputs_embeds`` (where the family has scattered the vision features in) and the KV-cache
    length. A forward on an empty cache is a prefill (step 0: new mask and memory), any other
    forward a decode step. Forwards made while ``state.bypass`` is set are ignored.
    """
    state = VisualState()
    img_id = lm.image_token_id
    embed = lm.hf_model.get_input_embeddings()

    def on_model(module: nn.Module, args: tuple, kwargs: dict) -> None:
        if state.bypass:
            return
        ids = kwargs.get("input_ids")
        if ids is None and args and torch.is_tensor(args[0]) and not args[0].is_floating_point():
            ids = args[0]
        state._pending_ids = ids

    def on_language_model(module: nn.Module, args: tuple, kwargs: dict) -> None:
        if state.bypass:
            return
        emb = kwargs.get("inputs_embeds")
        ids = state._pending_ids
        state._pending_ids = None
        if ids is None:
            ids = kwargs.get("input_ids")
        if emb is None:
            if ids is None:
                return
            emb = embed(ids)
        past = cached_length(kwargs)
        B, L = emb.shape[:2]
        state.total = past + L
        if past > 0:
            state.step += 1
            return
        # Prefill: a new prompt. Image positions from the ids, else Qwen3-VL's visual_pos_masks.
        if ids is not None and tuple(ids.shape) == (B, L):
            mask = ids == img_id
        elif kwargs.get("visual_pos_masks") is not None:
            mask = kwargs["visual_pos_masks"].bool()
        else:
            mask = torch.zeros(B, L, dtype=torch.bool, device=emb.device)
        mask = mask.to(emb.device)
        counts = mask.sum(1)
        n = int(counts.max()) if B else 0
        mem = emb.new_zeros(B, n, emb.shape[-1])
        mem_mask = torch.arange(n, device=emb.device)[None, :] < counts[:, None]
        mem[mem_mask] = emb[mask].detach()  # row-major: each sample's image tokens in order
        state.image_mask, state.memory, state.memory_mask = mask, mem, mem_mask
        state.step = 0

    handles = [
        lm.hf_model.register_forward_pre_hook(on_model, with_kwargs=True),
        lm.language_model.register_forward_pre_hook(on_language_model, with_kwargs=True),
    ]
    try:
        yield state
    finally:
        for h in handles:
            h.remove()


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


def register_fix(name: str, config: Any, describe: Callable[[Any], str],
                 active: Callable[[LoadedModel, Any], contextlib.AbstractContextManager[Any]]) -> None:
    """Register variant ``name`` running ``active(lm, config)``; ``name:key=value`` specs re-parse ``config``."""
    from pvm_bench.variants import register_variant

    register_variant(fix_variant(name, config, describe, active))


def fix_variant(name: str, config: Any, describe: Callable[[Any], str],
                active: Callable[[LoadedModel, Any], contextlib.AbstractContextManager[Any]]) -> Any:
    """The :class:`~pvm_bench.variants.Variant` of one fix at ``config`` (dataclass of hyperparameters)."""
    from pvm_bench.variants import Variant

    return Variant(
        name, describe(config), lambda lm: active(lm, config),
        configure=lambda params: fix_variant(name, parse_params(type(config), params, name), describe, active),
    )


# Registration: importing the fix modules registers their variants.
from pvm_bench.fixes import memvr, pai, reinject  # noqa: F401,E402  (the fixes import helpers above)
