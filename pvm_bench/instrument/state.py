"""The per-forward state, captured once per forward for every probe, fix and PVM branch.

Two forward pre-hooks do all the bookkeeping that probes, fixes and PVM need about the forward
in flight (one place, instead of one copy per consumer):

* on the top-level model and every module between it and the language model: the ``input_ids``
  of the call (the language model itself only sees ``inputs_embeds``), or, when only
  ``inputs_embeds`` were given, the positions whose embedding equals the image placeholder's
  (transformers' own convention for callers that embed themselves);
* on the language model: ``inputs_embeds`` (where the family has scattered the vision features
  in), the KV-cache length and Qwen3-VL's ``visual_pos_masks``.

A forward on an empty cache is a prefill (``step = 0``), any other forward a decode step
(``step + 1``; a decode call that brings new image tokens, e.g. a cached multi-turn chat,
appends them to the memory). Forwards made while :attr:`ForwardState.bypass` is set (an extra
forward a fix runs itself, such as PAI's image-free pass) are not counted and not seen.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from pvm_bench.models.hooks import cached_length


@dataclass
class ForwardState:
    """What is known about the forward in flight (shared by every consumer of one model).

    Attributes:
        image_mask: ``[B, P]`` bool image positions of the prompt (set at prefill).
        memory: ``[B, N, H]`` the visual embeddings placed into ``inputs_embeds`` at image
            positions (rows padded to the longest with zeros); ``memory_mask`` ``[B, N]`` True
            on real slots. Empty (``N = 0``) for a prompt without images.
        query_mask: ``[B, L]`` image positions of the CURRENT call's queries (None when none of
            them is an image token, i.e. at every decode step).
        past: cached positions before this forward; ``q_len``: positions in this forward;
            ``total = past + q_len`` (keys of a full cache are positions ``[0, total)``).
        step: 0 during the prefill forward, t during the decode forward feeding generated token t;
            -1 before the first forward.
        attention_mask: the 2-D ``[B, keys]`` padding mask the language model received (its last
            ``q_len`` columns are this forward's positions), or None.
        version: incremented whenever the memory changes (consumers cache projections by it).
        bypass: set by a fix while it runs an extra forward of its own.
        scratch: per-forward cache for consumers (cleared at every counted forward).
    """

    image_mask: torch.Tensor | None = None
    memory: torch.Tensor | None = None
    memory_mask: torch.Tensor | None = None
    query_mask: torch.Tensor | None = None
    attention_mask: torch.Tensor | None = None
    past: int = 0
    q_len: int = 0
    step: int = -1
    version: int = 0
    bypass: bool = False
    scratch: dict[Any, Any] = field(default_factory=dict)
    _pending_mask: torch.Tensor | None = field(default=None, repr=False)
    _pending_ids: torch.Tensor | None = field(default=None, repr=False)

    @property
    def total(self) -> int:
        return self.past + self.q_len

    @property
    def prefill(self) -> bool:
        return self.past == 0

    @property
    def has_memory(self) -> bool:
        return self.memory is not None and self.memory.shape[1] > 0

    def key_image_mask(self, n_keys: int) -> torch.Tensor:
        """``[B, n_keys]`` float image flags of the keys ``[total - n_keys, total)`` (generated keys are text)."""
        assert self.image_mask is not None
        B, P = self.image_mask.shape
        total = self.total
        start = total - n_keys
        out = torch.zeros(B, n_keys, dtype=torch.float32, device=self.image_mask.device)
        lo, hi = max(start, 0), min(total, P)
        if hi > lo:
            out[:, lo - start : hi - start] = self.image_mask[:, lo:hi].float()
        return out

    def reset(self) -> None:
        """Forget the memory and the step (a new generation starts with a prefill anyway)."""
        self.image_mask = self.memory = self.memory_mask = self.query_mask = self._pending_mask = None
        self._pending_ids = None
        self.attention_mask = None
        self.past = self.q_len = 0
        self.step = -1
        self.version += 1
        self.scratch.clear()


def _ids_from(args: tuple, kwargs: dict) -> torch.Tensor | None:
    ids = kwargs.get("input_ids")
    if ids is None and args and torch.is_tensor(args[0]) and not args[0].is_floating_point():
        ids = args[0]
    return ids


class StateCapture:
    """The hooks that fill one :class:`ForwardState` (installed while anything uses them)."""

    def __init__(self, state: ForwardState, image_token_id: int, language_model: nn.Module,
                 outer_modules: list[nn.Module], embed: Any) -> None:
        self.state = state
        self.image_token_id = int(image_token_id)
        self.language_model = language_model
        self.outer_modules = outer_modules
        self.embed = embed
        self._handles: list[Any] = []

    @property
    def installed(self) -> bool:
        return bool(self._handles)

    def install(self) -> None:
        if self._handles:
            return
        for module in self.outer_modules:
            self._handles.append(module.register_forward_pre_hook(self._on_outer, with_kwargs=True))
        self._handles.append(self.language_model.register_forward_pre_hook(self._on_language_model, with_kwargs=True))

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        # The state keeps its last values (callers read them after the capture ends); the next
        # prefill replaces them.

    def _on_outer(self, module: nn.Module, args: tuple, kwargs: dict) -> None:
        state = self.state
        if state.bypass:
            return
        ids = _ids_from(args, kwargs)
        if ids is not None:
            state._pending_ids = ids  # compared with the image id once, in the language-model hook
            return
        emb = kwargs.get("inputs_embeds")
        if emb is not None and state._pending_ids is None and state._pending_mask is None:
            ref = self.embed.weight[self.image_token_id].to(emb.device, emb.dtype)
            state._pending_mask = (emb == ref).all(-1)

    def _on_language_model(self, module: nn.Module, args: tuple, kwargs: dict) -> None:
        state = self.state
        if state.bypass:
            return
        emb = kwargs.get("inputs_embeds")
        ids = _ids_from(args, kwargs)
        given = emb if emb is not None else ids
        if given is None:
            return
        B, L = given.shape[:2]
        outer_ids, mask = state._pending_ids, state._pending_mask
        state._pending_ids = state._pending_mask = None
        past = cached_length(kwargs)
        state.past, state.q_len = past, L
        state.scratch.clear()
        am = kwargs.get("attention_mask")
        state.attention_mask = am if torch.is_tensor(am) and am.dim() == 2 else None
        if past > 0 and L == 1 and state.memory is not None and state.memory.shape[0] == B:
            # A plain decode step (one generated token, never an image placeholder: those are
            # suppressed): no tensor op, no host sync.
            state.step += 1
            state.query_mask = None
            return
        if emb is None:
            emb = self.embed(ids)
        if outer_ids is not None and tuple(outer_ids.shape) == (B, L):
            mask = outer_ids == self.image_token_id
        if mask is None or tuple(mask.shape) != (B, L):
            vpm = kwargs.get("visual_pos_masks")
            if ids is not None and tuple(ids.shape) == (B, L):
                mask = ids == self.image_token_id
            elif vpm is not None and tuple(vpm.shape) == (B, L):
                mask = vpm.bool()
            else:
                mask = None
        has_image = mask is not None and bool(mask.any())
        continuing = past > 0 and state.memory is not None and state.memory.shape[0] == B
        if past > 0:
            state.step += 1
        else:
            state.step = 0
            state.image_mask = mask.to(emb.device) if mask is not None else torch.zeros(
                B, L, dtype=torch.bool, device=emb.device)
        if has_image:
            assert mask is not None
            mask = mask.to(emb.device)
            counts = mask.sum(1)
            n = int(counts.max())
            mem = emb.new_zeros(B, n, emb.shape[-1])
            mem_mask = torch.arange(n, device=emb.device)[None, :] < counts[:, None]
            # Row-major boolean indexing keeps each sample's image tokens in order.
            mem[mem_mask] = emb[mask].detach()
            if continuing:  # new images later in a cached conversation join the memory
                assert state.memory is not None and state.memory_mask is not None
                mem = torch.cat([state.memory.to(mem.device), mem], 1)
                mem_mask = torch.cat([state.memory_mask.to(mem.device), mem_mask], 1)
            state.memory, state.memory_mask, state.query_mask = mem, mem_mask, mask
            state.version += 1
        elif continuing:
            state.query_mask = None  # decode step: the memory (and projections of it) stay valid
        else:
            state.memory = emb.new_zeros(B, 0, emb.shape[-1])
            state.memory_mask = torch.zeros(B, 0, dtype=torch.bool, device=emb.device)
            state.query_mask = None
            state.version += 1
