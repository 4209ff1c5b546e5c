"""Splicing PVM blocks into decoder layers through the instrument's hook sites.

How the branch is spliced into a decoder layer ``x -> h = x + attn(norm(x)) -> h + mlp(ffn_norm(h))``:

* a forward pre-hook on the ``layers.{i}.ffn_in`` site (the FFN pre-norm) records its input,
  which is exactly ``h``;
* a forward hook on the ``layers.{i}.ffn_out`` site (the FFN, or its post-norm) returns
  ``ffn_out + pvm_block(h)``, so the layer's own residual add yields
  ``h + mlp(post_attention_layernorm(h)) + out``.

The visual memory ``V``, the image positions of the current queries and the memory version come
from the instrument's :class:`~pvm_bench.instrument.state.ForwardState` (captured once per forward
for every consumer). Without autograd, each block keeps a :class:`~pvm_bench.pvm.block.MemoryCache`
per memory version (projected keys/values, masks, the gate; built at prefill) and runs the fused
:meth:`~pvm_bench.pvm.block.PVMBlock.infer`, so a decode step costs a handful of small ops per
PVM layer and no host synchronisation. With autograd (training) the plain ``forward`` runs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from pvm_bench.instrument import Instrument
from pvm_bench.pvm.block import MemoryCache, PVMBlock

# observer(layer, h, out) is called for every branch evaluation; out is None when the branch
# contributed nothing (gate exactly zero in inference, or no visual memory).
Observer = Callable[[int, torch.Tensor, "torch.Tensor | None"], None]


@dataclass
class BranchState:
    """Per-handle runtime state of the hooks."""

    enabled: bool = True
    h: dict[int, torch.Tensor] = field(default_factory=dict)
    caches: dict[int, tuple[int, MemoryCache]] = field(default_factory=dict)

    def invalidate(self) -> None:
        """Drop every cached projection (weights or gates changed)."""
        self.h.clear()
        self.caches.clear()


def splice(inst: Instrument, blocks: dict[int, PVMBlock], state: BranchState,
           observers: list[Observer]) -> list[Any]:
    """Register the two hooks of every block; returns the handles (remove them to detach)."""
    handles = []
    for idx, block in blocks.items():
        handles.append(inst.sites.hook(f"layers.{idx}.ffn_in", _pre_hook(idx, state), pre=True))
        handles.append(inst.sites.hook(f"layers.{idx}.ffn_out", _post_hook(idx, block, inst, state, observers)))
    return handles


def _pre_hook(idx: int, state: BranchState) -> Callable:
    def pre(module: nn.Module, args: tuple) -> None:
        if state.enabled:
            state.h[idx] = args[0]

    return pre


def _post_hook(idx: int, block: PVMBlock, inst: Instrument, state: BranchState,
               observers: list[Observer]) -> Callable:
    fs = inst.state

    def post(module: nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor | None:
        h = state.h.pop(idx, None)
        if h is None or not state.enabled:
            return None
        mem, mem_mask = fs.memory, fs.memory_mask
        if mem is None or mem_mask is None or mem.shape[1] == 0 or mem.shape[0] != h.shape[0]:
            for fn in observers:
                fn(idx, h, None)
            return None
        qmask = fs.query_mask
        if qmask is not None:
            qmask = qmask.to(h.device) if tuple(qmask.shape) == tuple(h.shape[:2]) else None
        if torch.is_grad_enabled():  # training: the differentiable path, nothing cached
            out = block(h, block.memory_kv(mem.to(h.device)), mem_mask.to(h.device), qmask)
        else:
            cached = state.caches.get(idx)
            if cached is None or cached[0] != fs.version:
                cached = (fs.version, block.prepare(mem.to(h.device), mem_mask.to(h.device)))
                state.caches[idx] = cached
            cache = cached[1]
            if cache.gate_zero:  # exact base behaviour (and no wasted work) for a zero gate
                for fn in observers:
                    fn(idx, h, None)
                return None
            out = block.infer(h, cache, qmask)
        for fn in observers:
            fn(idx, h, out)
        return output + out

    return post
